import { expect } from 'chai';
import { createMemoryLogger } from '../../src/observability/log.js';
import { fullGc, startMemoryRelease } from '../../src/observability/memory.js';
import { createMetrics } from '../../src/observability/metrics.js';

describe('memory release after streams leave', () => {
  const setup = (start: number) => {
    let load = start;
    let t = 0;
    let collections = 0;
    const log = createMemoryLogger();
    const metrics = createMetrics();
    const release = startMemoryRelease({ load: () => load, log, metrics, everyMs: 0, now: () => t, gc: () => collections++ });
    return {
      set: (n: number) => (load = n),
      after: (ms: number) => {
        t += ms;
        release.check();
      },
      collections: () => collections,
      counted: () => metrics.value('inferplane_memory_releases_total'),
      log,
    };
  };

  it('collects once when the load has fallen by at least 100 and stayed put for 5 s, logged and counted', async () => {
    const m = setup(0);
    m.set(2_000);
    m.after(1_000);
    m.set(150);
    m.after(1_000); // the drop is seen here
    m.after(4_999);
    expect(m.collections(), 'not yet quiet for 5 s').to.equal(0);
    m.after(1);
    expect(m.collections()).to.equal(1);
    expect(await m.counted()).to.equal(1);
    expect(m.log.lines.find((l) => l.msg === 'streams left: memory released')?.fields).to.include({ streamsBefore: 2_000, streams: 150 });
    m.after(60_000);
    expect(m.collections(), 'no new drop, no new collection').to.equal(1);
  });

  it('waits while the load keeps moving (a fleet reconnecting), and ignores small drops', () => {
    const m = setup(1_000);
    for (let i = 0; i < 20; i++) {
      m.set(i % 2 === 0 ? 400 : 600);
      m.after(2_000);
    }
    expect(m.collections()).to.equal(0);
    m.after(5_000);
    expect(m.collections()).to.equal(1);
    const small = setup(1_000);
    small.set(901);
    small.after(60_000);
    small.after(60_000);
    expect(small.collections()).to.equal(0);
  });

  it('has a real full collection to call, without node --expose-gc', async () => {
    const gc = fullGc();
    expect(gc).to.be.a('function');
    let garbage: object | undefined = { big: new Array(1_000).fill('x') };
    const ref = new WeakRef(garbage);
    garbage = undefined;
    // A WeakRef's target lives to the end of the job that created or read it.
    await new Promise((r) => setImmediate(r));
    gc!();
    expect(ref.deref()).to.equal(undefined);
  });
});
