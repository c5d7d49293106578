import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnChild } from './support/processes.js';

// Start-up time is measured in `npm run bench -- --only startup`; what these tests hold is its cause: a command
// loads only the modules it uses (the Kubernetes client alone takes ~0.5 s, gRPC and protobufjs ~0.3 s).
describe('what each command loads', () => {
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'import-log-'))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Runs the CLI with the import log; returns the packages (node_modules directories) it loaded. */
  async function packagesLoaded(args: string[], until?: string): Promise<{ packages: string[]; err: string }> {
    const log = path.join(dir, `${args.join('_').replace(/[^\w-]/g, '')}.txt`);
    const p = spawnChild(process.execPath, ['--import=tsx', '--import=./test/support/import-log.mjs', 'src/main.ts', ...args], { env: { ...process.env, IMPORT_LOG: log } });
    if (until) {
      await p.logLine(until);
      p.child.kill('SIGTERM');
    }
    await p.exited;
    const urls = fs.readFileSync(log, 'utf8').split('\n');
    const packages = [...new Set(urls.map((u) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u)?.[1]).filter((x): x is string => x !== undefined))];
    return { packages, err: p.err() };
  }

  it('--help, status and mode load no package at all', async function () {
    this.timeout(60_000);
    for (const args of [['--help'], ['status', '--help'], ['mode', '--help'], ['status', '--admin', 'http://127.0.0.1:9'], ['mode', 'ml/llama', 'auto', '--admin', 'http://127.0.0.1:9']]) {
      const { packages } = await packagesLoaded(args);
      expect(packages, `inferplane ${args.join(' ')}`).to.deep.equal([]);
    }
  });

  it('serve on an endpoints file does not load the Kubernetes client', async function () {
    this.timeout(60_000);
    const { packages } = await packagesLoaded(['serve', '--xds-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0'], 'inferplane serving');
    expect(packages).to.include('@grpc/grpc-js');
    expect(packages).not.to.include('@kubernetes/client-node');
  });
});
