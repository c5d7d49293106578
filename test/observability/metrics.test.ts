import { expect } from 'chai';
import { createMetrics } from '../../src/observability/metrics.js';
import { TypeUrl } from '../../src/xds/resources.js';
import { ep, model, svc } from '../support/builders.js';
import { eventually, startHarness } from '../support/harness.js';

describe('metrics (prom-client)', () => {
  it('renders counters, label sets at 0 before their first event, scrape-time gauges and histograms in the text format', async () => {
    const m = createMetrics();
    const c = m.counter('t_events_total', 'Events', ['kind'], [{ kind: 'a' }, { kind: 'b' }]);
    c.inc({ kind: 'a' }, 2);
    m.counter('t_plain_total', 'Plain');
    let services = [['x', 3], ['y', 4]] as [string, number][];
    m.gauge('t_level', 'Level', ['service'], () => services.map(([service, n]) => [{ service }, n] as const));
    m.histogram('t_wait_seconds', 'Wait', ['type'], [0.1, 1]).observe({ type: 'eds' }, 0.5);
    const text = await m.render();
    expect(text).to.contain('# TYPE t_events_total counter').and.contain('t_events_total{kind="a"} 2').and.contain('t_events_total{kind="b"} 0');
    expect(text).to.contain('t_plain_total 0');
    expect(text).to.contain('# TYPE t_level gauge').and.contain('t_level{service="x"} 3');
    expect(text).to.contain('# TYPE t_wait_seconds histogram').and.contain('t_wait_seconds_bucket{le="0.1",type="eds"} 0').and.contain('t_wait_seconds_bucket{le="1",type="eds"} 1').and.contain('t_wait_seconds_count{type="eds"} 1');
    services = [['y', 5]];
    const later = await m.render();
    expect(later, 'a series whose label set is gone is not shown').not.to.contain('t_level{service="x"}');
    expect(later).to.contain('t_level{service="y"} 5');
    expect(await m.value('t_events_total', { kind: 'a' })).to.equal(2);
    expect(await m.value('t_wait_seconds', { type: 'eds' })).to.equal(1);
    expect(m.counter('t_events_total', 'again', ['kind']), 'a second registration returns the first').to.equal(c);
  });

  it('folds a bound counter\'s increments into the counter when it is read, the same incrementer for the same labels', async () => {
    const m = createMetrics();
    const c = m.counter('t_bound_total', 'Bound', ['kind', 'zone']);
    const inc = c.bind({ zone: 'z1', kind: 'a' });
    expect(c.bind({ kind: 'a', zone: 'z1' }), 'bound again, labels in another order').to.equal(inc);
    inc();
    inc(4);
    c.inc({ kind: 'a', zone: 'z1' });
    expect(await m.value('t_bound_total', { kind: 'a', zone: 'z1' })).to.equal(6);
    inc(2);
    expect(await m.render()).to.contain('t_bound_total{kind="a",zone="z1"} 8');
    expect(await m.value('t_bound_total', { kind: 'a', zone: 'z1' }), 'read twice, counted once').to.equal(8);
  });

  it('adds Node\'s process, GC and event-loop metrics when asked, and only then', async () => {
    const text = await createMetrics({ process: true }).render();
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_gc_duration_seconds', 'nodejs_heap_size_used_bytes']) expect(text).to.contain(`# TYPE ${name} `);
    expect(await createMetrics().render()).not.to.contain('process_cpu_user_seconds_total');
  });

  it('observes event → publish once per publication, and publish → write per stream and type only for pushes, not for first answers', async () => {
    const h = await startHarness(model([svc('a', [ep('10.0.0.1', 80)])]));
    try {
      const c = h.client('sotw');
      c.send({ node: { id: 'n1', cluster: 'edge' }, type_url: TypeUrl.Cluster });
      const first = await c.next();
      c.send({ type_url: TypeUrl.Cluster, version_info: first.versionInfo, response_nonce: first.nonce });
      expect(await h.metrics.value('inferplane_xds_push_latency_seconds', { type: 'cds' }), 'a first answer is no push').to.equal(0);
      const r = await h.publisher.publish(model([svc('a', [ep('10.0.0.1', 80)]), svc('b', [ep('10.0.0.2', 80)])]), undefined, Date.now() - 250);
      expect(r.ok).to.equal(true);
      await c.next((x) => x.versionInfo !== first.versionInfo);
      await eventually(async () => (await h.metrics.value('inferplane_xds_push_latency_seconds', { type: 'cds' })) === 1, 'one CDS push observed');
      const text = await h.metrics.render();
      expect(text).to.contain('inferplane_publish_latency_seconds_count 1');
      expect(text, 'the 250 ms before the call count').to.contain('inferplane_publish_latency_seconds_bucket{le="0.1"} 0');
      expect(await h.metrics.value('inferplane_xds_push_latency_seconds', { type: 'eds' }), 'EDS was never asked for').to.equal(0);
    } finally {
      await h.stop();
    }
  });
});
