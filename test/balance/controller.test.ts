import { expect } from 'chai';
import { createWeightController } from '../../src/balance/controller.js';
import { DEFAULT_WEIGHT_OPTIONS } from '../../src/balance/weights.js';
import { createMemoryLogger } from '../../src/observability/log.js';
import { createMetrics } from '../../src/observability/metrics.js';
import type { PodScrape, PodWork, ScrapeProblem } from '../../src/scaler/queue.js';
import { createFakeTimers } from '../support/fake-timers.js';

const M = DEFAULT_WEIGHT_OPTIONS.mean;
const work = (n: number): PodWork => ({ running: n, waiting: 0, kvCacheUsage: null });

/** A service of four pods whose readings the test sets; the scrape is a stand-in for the pods' /metrics. */
function setup(publishIntervalMs = 0) {
  const readings = new Map<string, { work?: PodWork; problem?: { kind: ScrapeProblem; text: string } }>([['10.0.0.1', { work: work(60) }], ['10.0.0.2', { work: work(60) }], ['10.0.0.3', { work: work(60) }], ['10.0.0.4', { work: work(60) }]]);
  const scrape: PodScrape = async () => ({ at: 0, pods: [...readings].map(([address, r]) => ({ address, port: 8000, work: r.work, ...(r.problem && { problem: r.problem }) })) });
  const published: { service: string; weights: ReadonlyMap<string, number> }[] = [];
  const log = createMemoryLogger();
  const metrics = createMetrics();
  const timers = createFakeTimers();
  let services = ['ml/llama'];
  const c = createWeightController({ publishIntervalMs, scrape, services: () => services, onWeights: (changed) => { for (const [service, weights] of changed) published.push({ service, weights }); }, log, metrics, timers });
  return { c, readings, published, log, metrics, timers, setServices: (s: string[]) => (services = s) };
}

describe('load-aware weights controller', () => {
  it('publishes a service\'s weights once, then only when one changes, and says why each endpoint has its weight', async () => {
    const t = setup();
    for (let i = 0; i < 5; i++) await t.c.tick();
    expect(t.published).to.have.length(1);
    expect([...t.published[0]!.weights]).to.deep.equal([['10.0.0.1:8000', M], ['10.0.0.2:8000', M], ['10.0.0.3:8000', M], ['10.0.0.4:8000', M]]);
    t.readings.set('10.0.0.4', { work: work(400) });
    await t.c.tick();
    expect(t.published).to.have.length(2);
    expect(t.published[1]!.weights.get('10.0.0.4:8000')).to.be.below(M);
    const view = t.c.status()['ml/llama']!;
    const slow = view.endpoints.find((e) => e.endpoint === '10.0.0.4:8000')!;
    expect(slow.load).to.equal(400);
    expect(slow.why).to.match(/above, sent less/);
    expect(view.endpoints.find((e) => e.endpoint === '10.0.0.1:8000')!.why).to.match(/at the full weight already|held/);
  });

  it('weighs a pod it cannot read as average, logs the problem once per pod and counts it by reason', async () => {
    const t = setup();
    t.readings.set('10.0.0.4', { work: work(400) });
    for (let i = 0; i < 3; i++) await t.c.tick();
    expect(t.c.weights('ml/llama')!.get('10.0.0.4:8000')).to.be.below(M);
    const cases: [{ work?: PodWork; problem?: { kind: ScrapeProblem; text: string } }, string][] = [
      [{ problem: { kind: 'timeout', text: 'no answer within 1000 ms' } }, 'timeout'],
      [{ problem: { kind: 'http-error', text: '/metrics answered HTTP 500' } }, 'http-error'],
      [{ problem: { kind: 'no-metrics', text: 'no vLLM gauges in /metrics' } }, 'no-metrics'],
      [{ work: work(5_000_000) }, 'absurd'],
    ];
    for (const [reading, reason] of cases) {
      t.readings.set('10.0.0.4', reading);
      for (let i = 0; i < 30; i++) await t.c.tick();
      expect(t.c.weights('ml/llama')!.get('10.0.0.4:8000'), reason).to.equal(M);
      expect(await t.metrics.value('inferplane_weights_unreadable_total', { service: 'ml/llama', reason }), reason).to.equal(30);
      expect(t.c.status()['ml/llama']!.endpoints.find((e) => e.endpoint === '10.0.0.4:8000')!.why).to.contain('unknown');
      t.readings.set('10.0.0.4', { work: work(60) });
      await t.c.tick();
    }
    const warned = t.log.lines.filter((l) => l.msg.startsWith('a pod\'s load cannot be read'));
    expect(warned.map((l) => l.fields['problem'])).to.deep.equal(['no answer within 1000 ms', '/metrics answered HTTP 500', 'no vLLM gauges in /metrics', 'an absurd load of 5000000 requests']);
    expect(t.log.lines.filter((l) => l.msg === 'a pod\'s load reads again')).to.have.length(4);
  });

  it('publishes changes at most once per publish interval (a new service at once), the latest weights when it does', async () => {
    const t = setup(5_000);
    await t.c.tick();
    expect(t.published).to.have.length(1);
    t.readings.set('10.0.0.4', { work: work(400) });
    for (let s = 1; s <= 12; s++) {
      t.timers.advance(1_000);
      await t.c.tick();
    }
    // Changes every second for 12 s: published at 5 s and 10 s after the first, not in between.
    expect(t.published).to.have.length(3);
    expect(t.published[2]!.weights.get('10.0.0.4:8000')).to.be.below(t.published[1]!.weights.get('10.0.0.4:8000')!);
  });

  it('runs every second on its clock, and forgets a service that stops asking', async () => {
    const t = setup();
    t.c.start();
    for (let i = 0; i < 3; i++) {
      t.timers.advance(1_000);
      await new Promise((r) => setImmediate(r));
    }
    expect(t.c.weights('ml/llama')).to.not.equal(undefined);
    t.setServices([]);
    await t.c.tick();
    expect(t.c.weights('ml/llama')).to.equal(undefined);
    expect(t.c.status()).to.deep.equal({});
    t.c.stop();
    expect(t.timers.pending()).to.equal(0);
  });
});
