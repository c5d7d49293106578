import { expect } from 'chai';
import { createMemoryLogger } from '../../src/observability/log.js';
import { createLeaderElector, type LeaderElector } from '../../src/scaler/lease.js';
import { startApiServer, type ApiServerStandIn } from '../support/apiserver.js';
import { createFakeTimers } from '../support/fake-timers.js';
import { eventually } from '../support/harness.js';
import { kubeConfigFor } from '../support/kube.js';

describe('Lease leader election (client-node against the API-server stand-in, virtual clocks)', () => {
  let api: ApiServerStandIn;
  const running: LeaderElector[] = [];
  beforeEach(async () => {
    api = await startApiServer();
  });
  afterEach(async () => {
    for (const e of running.splice(0)) await e.stop();
    await api.close();
  });

  /** An elector on its own clock; `step(ms)` moves that clock and waits for the attempt it triggers. */
  const contender = (identity: string) => {
    const timers = createFakeTimers();
    const changes: boolean[] = [];
    const e = createLeaderElector({
      kubeConfig: kubeConfigFor(api.url), namespace: 'inferplane-system', name: 'scaler', identity,
      leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000,
      timers, log: createMemoryLogger(), onChange: (v) => changes.push(v), annotations: { 'inferplane.io/instance': identity },
    });
    running.push(e);
    return {
      e, changes, timers,
      async begin() {
        e.start();
        await eventually(() => timers.pending() === 1, `${identity}: first attempt done`);
      },
      async step(ms: number) {
        for (let left = ms; left > 0; left -= 2_000) {
          timers.advance(Math.min(2_000, left));
          await eventually(() => timers.pending() === 1, `${identity}: attempt done`);
        }
      },
    };
  };
  const lease = () => api.get('leases', 'inferplane-system', 'scaler')!;

  it('one contender acquires; the other waits a full lease duration of silence on its own clock, then takes over', async () => {
    const a = contender('a');
    await a.begin();
    expect(a.e.isLeader()).to.equal(true);
    expect((lease()['spec'] as any).holderIdentity).to.equal('a');
    expect(String((lease()['spec'] as any).renewTime)).to.match(/\.\d{6}Z$/);
    expect(lease().metadata.annotations).to.deep.equal({ 'inferplane.io/instance': 'a' });
    const b = contender('b');
    await b.begin();
    expect(b.e.isLeader()).to.equal(false);
    expect(b.e.holder()?.identity).to.equal('a');
    // a renews once (b sees it at its t=2 s), then hangs: its clock stands still, no more renewals.
    await a.step(2_000);
    await b.step(16_000);
    expect(b.e.isLeader(), '14 s of silence').to.equal(false);
    await b.step(2_000);
    expect(b.e.isLeader()).to.equal(true);
    expect((lease()['spec'] as any)).to.include({ holderIdentity: 'b', leaseTransitions: 1 });
    expect(b.changes).to.deep.equal([true]);
    // a comes back and finds it lost.
    await a.step(2_000);
    expect(a.e.isLeader()).to.equal(false);
    expect(a.changes).to.deep.equal([true, false]);
  });

  it('a leader that cannot renew stops acting at the renew deadline, before anyone may take over', async () => {
    const a = contender('a');
    await a.begin();
    api.failNext(/leases/, 100, 500);
    await a.step(8_000);
    expect(a.e.isLeader()).to.equal(true);
    await a.step(2_000);
    expect(a.e.isLeader()).to.equal(false);
    expect(a.changes).to.deep.equal([true, false]);
  });

  it('hands over at once on stop: the lease is released, not left to expire', async () => {
    const a = contender('a');
    const b = contender('b');
    await a.begin();
    await b.begin();
    await a.e.stop();
    expect((lease()['spec'] as any).holderIdentity).to.equal('');
    await b.step(2_000);
    expect(b.e.isLeader()).to.equal(true);
  });

  it('two contenders starting together: exactly one wins (the create and every update carry a version)', async () => {
    const all = ['a', 'b', 'c'].map(contender);
    await Promise.all(all.map((c) => c.begin()));
    expect(all.filter((c) => c.e.isLeader())).to.have.length(1);
    await Promise.all(all.map((c) => c.step(2_000)));
    expect(all.filter((c) => c.e.isLeader())).to.have.length(1);
  });
});
