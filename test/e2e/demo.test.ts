import { expect } from 'chai';
import { spawnChild } from '../support/processes.js';

describe('npm run demo: inferplane, real Envoy and simulators on this machine, no Docker', () => {
  it('runs both policies through Envoy and prints what each did, the status tables and the scaler\'s explanation', async function () {
    this.timeout(120_000);
    const demo = spawnChild(process.execPath, ['--import=tsx', 'scripts/demo.ts', '--seconds', '2', '--upstreams', '3']);
    expect(await demo.exited, demo.err()).to.equal(0);
    const out = demo.out();
    expect(out).to.match(/^Status page \(live\): http:\/\/127\.0\.0\.1:\d+\/ /m);
    expect(out).to.match(/^least-request\s+\d+\s+0\s+\d+\s+\d+\s+\d+% \d+% \d+%$/m);
    expect(out).to.match(/^round-robin\s+\d+\s+0\s+\d+\s+\d+\s+\d+% \d+% \d+%$/m);
    expect(out).to.match(/^front-proxy-1\s+edge\s+ads\/sotw\s+SYNCED\s+SYNCED\s+SYNCED\s+SYNCED/m);
    expect(out).to.match(/^llm\s+default\/llm\s+3\s+3\s+/m);
    expect(out).to.match(/^llm \((normal|surge|emergency) mode\): (holds at|scales up from|scales down from) \d+/m);
  });
});
