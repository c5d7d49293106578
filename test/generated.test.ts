import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';

const ROOT = path.join(import.meta.dirname, '..');

function listFiles(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => path.relative(dir, path.join(d.parentPath, d.name))).sort();
}

describe('src/generated (sealed)', () => {
  it('is exactly what the pinned gen:types command produces', function () {
    this.timeout(60_000);
    const script: string = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).scripts['gen:types'];
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-gen-'));
    try {
      execFileSync('bash', ['-c', script.replaceAll('src/generated', out)], { cwd: ROOT, env: { ...process.env, PATH: `${path.join(ROOT, 'node_modules/.bin')}:${process.env['PATH']}` }, stdio: 'pipe' });
      const committed = path.join(ROOT, 'src/generated');
      expect(listFiles(out)).to.deep.equal(listFiles(committed));
      for (const f of listFiles(out)) expect(fs.readFileSync(path.join(out, f), 'utf8'), f).to.equal(fs.readFileSync(path.join(committed, f), 'utf8'));
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});

describe('proto/vendor (the Envoy .proto files loaded at run time)', () => {
  it('is exactly the import closure scripts/sync-protos.ts copies from the pinned @grpc/grpc-js-xds', function () {
    this.timeout(60_000);
    execFileSync(process.execPath, ['--import=tsx', 'scripts/sync-protos.ts', '--check'], { cwd: ROOT, stdio: 'pipe' });
  });
});
