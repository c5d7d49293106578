import { fork } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { ep, model, svc } from '../support/builders.js';
import { startHarness, type Harness } from '../support/harness.js';

/** The kernel's count of connections dropped because a listen queue was full (this network namespace). */
function listenOverflows(): number {
  const lines = fs.readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
  const names = lines[0]!.split(/\s+/);
  const values = lines[1]!.split(/\s+/);
  return Number(values[names.indexOf('ListenOverflows')]);
}

describe('a connection storm (every Envoy reconnecting at once) loses no connection', function () {
  this.timeout(60_000);
  let h: Harness;
  afterEach(() => h?.stop());

  it('takes more connections than Node\'s default backlog (511) that arrive while the process is busy', async () => {
    const somaxconn = Number(fs.readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
    const count = Math.min(1_500, somaxconn - 64);
    expect(count, `net.core.somaxconn is ${somaxconn}: too small to show anything beyond Node's default backlog`).to.be.greaterThan(700);
    h = await startHarness(model([svc('a', [ep('10.0.0.1', 80)])]));
    const child = fork(path.join(import.meta.dirname, '../support/storm-client.ts'), [h.address, String(count)], { execArgv: ['--import=tsx'] });
    try {
      await new Promise((resolve) => child.once('message', resolve));
      const before = listenOverflows();
      const result = new Promise<{ ok: number; failed: number; sample: string[] }>((resolve) => child.on('message', (m: any) => m.cmd === 'result' && resolve(m)));
      child.send({ cmd: 'go' });
      // The server's process is busy (as after a restart, loading its snapshot) while every connection arrives:
      // they wait in the kernel's listen queue, which must hold them all.
      for (const until = Date.now() + 1_500; Date.now() < until;);
      const r = await result;
      expect(r, JSON.stringify(r)).to.include({ ok: count, failed: 0 });
      expect(listenOverflows() - before, 'connections the kernel dropped from a full listen queue').to.equal(0);
    } finally {
      child.kill();
    }
  });
});
