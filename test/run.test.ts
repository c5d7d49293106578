import { spawnSync } from 'node:child_process';
import { expect } from 'chai';
import { ROOT } from './support/processes.js';

/** `npm test -- <files>` (test/run.mjs): which tests and which setups a selection means; nothing is run. */
function plan(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['test/run.mjs', ...args], { cwd: ROOT, env: { ...process.env, INFERPLANE_TEST_PLAN: '1' }, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('npm test -- <files>: running a subset', () => {
  it('runs every test and every setup with no arguments', () => {
    const p = JSON.parse(plan([]).stdout);
    expect(p.setups).to.deep.equal(['envoy', 'chromium', 'h2spec']);
    expect(p.files).to.include.members(['test/run.test.ts', 'test/grpc/h2spec.test.ts', 'test/e2e/status-page.test.ts']);
  });

  it('sets up only what the selected tests reach through their imports', () => {
    expect(JSON.parse(plan(['test/xds/sotw.test.ts']).stdout)).to.deep.equal({ setups: [], files: ['test/xds/sotw.test.ts'] });
    expect(JSON.parse(plan(['test/grpc']).stdout).setups).to.deep.equal(['h2spec']);
    expect(JSON.parse(plan(['test/e2e/status-page.test.ts']).stdout).setups).to.deep.equal(['chromium']);
    // Through test/support/p2c.ts, which starts Envoy.
    expect(JSON.parse(plan(['test/e2e/envoy-p2c.test.ts', '-g', 'x']).stdout).setups).to.include('envoy');
  });

  it('takes directories and globs, and refuses a name that matches no test, exit 2', () => {
    const p = JSON.parse(plan(['test/grpc/h*.test.ts']).stdout);
    expect(p.files).to.deep.equal(['test/grpc/h2spec.test.ts', 'test/grpc/hpack.test.ts', 'test/grpc/http2.test.ts']);
    expect(JSON.parse(plan(['test/**/hpack.test.ts']).stdout).files).to.deep.equal(['test/grpc/hpack.test.ts']);
    const bad = plan(['test/no-such-dir']);
    expect(bad.status).to.equal(2);
    expect(bad.stderr).to.include('test/no-such-dir names no test file');
  });
});
