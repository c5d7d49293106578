import { expect } from 'chai';
import { activeByCluster, createFleetStats, gaugesOf } from '../../src/scaler/stats.js';

describe('activeByCluster', () => {
  it('reads upstream_rq_active from stat names and from tag labels, ignoring other stats', () => {
    const r = activeByCluster([
      { name: 'cluster.ml/llama/http.upstream_rq_active', labels: {}, value: 12 },
      { name: 'cluster.upstream_rq_active', labels: { 'envoy.cluster_name': 'ml/other/http' }, value: 3 },
      // Tag extraction cut the name at its first dot: joined back.
      { name: 'cluster.1/http.upstream_rq_active', labels: { 'envoy.cluster_name': 'llama-3' }, value: 4 },
      // Admin /stats/prometheus spelling.
      { name: 'envoy_cluster_upstream_rq_active', labels: { envoy_cluster_name: 'ml/prom/http' }, value: 5 },
      { name: 'cluster.ml/llama/http.upstream_rq_total', labels: {}, value: 999 },
      { name: 'http.ingress.downstream_rq_active', labels: {}, value: 7 },
    ]);
    expect([...r.active]).to.deep.equal([['ml/llama/http', 12], ['ml/other/http', 3], ['llama-3.1/http', 4], ['ml/prom/http', 5]]);
    expect(r.rejected).to.deep.equal([]);
  });

  for (const [what, value] of [['negative', -1], ['absurd', 1e12], ['not a number', NaN], ['infinite', Infinity]] as const) {
    it(`refuses a ${what} gauge, saying which`, () => {
      const r = activeByCluster([{ name: 'cluster.ml/llama/http.upstream_rq_active', labels: {}, value }]);
      expect(r.active.size).to.equal(0);
      expect(r.rejected).to.deep.equal([`ml/llama/http: upstream_rq_active ${value} is not a plausible in-flight count`]);
    });
  }
});

describe('createFleetStats', () => {
  const m = (entries: [string, number][]) => new Map(entries);

  it("sums the latest report of every fresh Envoy over the service's clusters", () => {
    const s = createFleetStats({ expireMs: 15_000 });
    s.record('envoy-a', 1000, m([['ml/llama/http', 10], ['ml/llama/grpc', 2], ['ml/llama-70b/http', 50]]));
    s.record('envoy-b', 2000, m([['ml/llama/http', 5]]));
    s.record('envoy-a', 3000, m([['ml/llama/http', 20]])); // replaces envoy-a's previous report
    expect(s.sample('ml/llama', 4000)).to.deep.equal({ at: 2000, activeRequests: 25, envoys: 2, excluded: [] });
    expect(s.sample('ml/llama-70b', 4000)).to.deep.equal({ at: 2000, activeRequests: 0, envoys: 2, excluded: [] });
  });

  it('lets silent Envoys expire: a sample says how many reported and how fresh', () => {
    const s = createFleetStats({ expireMs: 10_000 });
    s.record('a', 0, m([['ml/x/http', 4]]));
    s.record('b', 8000, m([['ml/x/http', 6]]));
    expect(s.sample('ml/x', 9000)).to.deep.equal({ at: 0, activeRequests: 10, envoys: 2, excluded: [] });
    expect(s.sample('ml/x', 12_000)).to.deep.equal({ at: 8000, activeRequests: 6, envoys: 1, excluded: [] });
    expect(s.sample('ml/x', 30_000)).to.equal(undefined);
    expect(s.expire(30_000)).to.equal(2);
    expect(s.reporters()).to.deep.equal([]);
  });

  it('adds up the parts of one batched flush, never reading the counters-first part as an idle Envoy', () => {
    const s = createFleetStats({ minIntervalMs: 200 });
    s.record('a', 0, m([['ml/x/http', 7], ['ml/y/http', 2]]), { flush: 1000 });
    // The next flush: counters first (no gauge), then the gauges in two parts, all within milliseconds.
    expect(s.record('a', 1000, m([]), { flush: 2000 })).to.equal('recorded');
    expect(s.sample('ml/x', 1000)!.activeRequests).to.equal(7);
    expect(s.record('a', 1001, m([['ml/x/http', 9]]), { flush: 2000 })).to.equal('recorded');
    expect(s.record('a', 1002, m([['ml/y/http', 4]]), { flush: 2000 })).to.equal('recorded');
    expect([s.sample('ml/x', 1002)!.activeRequests, s.sample('ml/y', 1002)!.activeRequests]).to.deep.equal([9, 4]);
    // Once a flush is whole, a cluster it no longer has is gone.
    s.record('a', 2000, m([['ml/x/http', 1]]), { flush: 3000 });
    s.record('a', 3000, m([]), { flush: 4000 });
    expect([s.sample('ml/x', 3000)!.activeRequests, s.sample('ml/y', 3000)!.activeRequests]).to.deep.equal([1, 0]);
    // A new flush sooner than the flood limit is dropped whole.
    expect(s.record('a', 3050, m([['ml/x/http', 99]]), { flush: 5000 })).to.equal('throttled');
    expect(s.record('a', 3300, m([['ml/y/http', 99]]), { flush: 5000 })).to.equal('throttled');
    expect(s.sample('ml/y', 3300)!.activeRequests).to.equal(0);
  });

  it('leaves a reporter older than the sample age out of the total, saying which and why, instead of aging the whole fleet', () => {
    const s = createFleetStats({ expireMs: 15_000, minIntervalMs: 0 });
    s.record('quiet', 0, m([['ml/x/http', 5]]));
    s.record('busy-1', 11_000, m([['ml/x/http', 300]]));
    s.record('busy-2', 11_500, m([['ml/x/http', 200]]));
    expect(s.sample('ml/x', 12_000, 10_000)).to.deep.equal({
      at: 11_000, activeRequests: 500, envoys: 2,
      excluded: [{ nodeId: 'quiet', envoys: 1, ageMs: 12_000, reason: 'its latest report is 12.0 s old (maxSampleAge 10.0 s)' }],
    });
  });

  it('takes a repeated stamp long after its flush as a new report (a sender that never changes it), still throttled', () => {
    const s = createFleetStats({ minIntervalMs: 200 });
    s.record('a', 0, m([['ml/x/http', 5]]), { flush: 1 });
    expect(s.record('a', 1000, m([['ml/x/http', 7]]), { flush: 1 })).to.equal('recorded');
    expect(s.sample('ml/x', 1000)!.activeRequests).to.equal(7);
    expect(s.record('a', 1100, m([['ml/x/http', 9]]), { flush: 2 })).to.equal('throttled');
  });

  it('throttles an Envoy that floods', () => {
    const s = createFleetStats({ minIntervalMs: 200 });
    expect(s.record('a', 0, m([['ml/x/http', 1]]))).to.equal('recorded');
    expect(s.record('a', 100, m([['ml/x/http', 99]]))).to.equal('throttled');
    expect(s.record('a', 250, m([['ml/x/http', 2]]))).to.equal('recorded');
    expect(s.sample('ml/x', 300)!.activeRequests).to.equal(2);
  });

  it('carries a cluster\'s previous value over when its gauge is refused (a bad gauge is not zero requests)', () => {
    const s = createFleetStats({ minIntervalMs: 0 });
    s.record('a', 0, m([['ml/x/http', 40], ['ml/y/http', 3]]));
    const { active, rejectedClusters } = activeByCluster([{ name: 'cluster.ml/x/http.upstream_rq_active', labels: {}, value: -1 }, { name: 'cluster.ml/y/http.upstream_rq_active', labels: {}, value: 4 }]);
    expect(rejectedClusters).to.deep.equal(['ml/x/http']);
    s.record('a', 1_000, active, { keep: rejectedClusters });
    expect(s.sample('ml/x', 1_000)!.activeRequests).to.equal(40);
    expect(s.sample('ml/y', 1_000)!.activeRequests).to.equal(4);
  });

  it('counts a relay as the Envoys it stands for, dated by its oldest report, and never forwards relayed sums', () => {
    const s = createFleetStats({ expireMs: 15_000 });
    s.record('a', 1_000, m([['ml/x/http', 5]]));
    s.record('b', 1_500, m([['ml/x/http', 7]]));
    s.record('inferplane-relay:other', 2_000, m([['ml/x/http', 30]]), { relayed: { envoys: 6, oldestAt: 500 } });
    expect(s.sample('ml/x', 2_000)).to.deep.equal({ at: 500, activeRequests: 42, envoys: 8, excluded: [] });
    expect(s.local(2_000)).to.deep.equal({ active: m([['ml/x/http', 12]]), envoys: 2, oldestAt: 1_000 });
    // A stream that ended is forgotten at once (the Envoy reports elsewhere now).
    s.forget('a');
    expect(s.sample('ml/x', 2_000)!.envoys).to.equal(7);
    // The relay expires by the age of its oldest report.
    expect(s.sample('ml/x', 15_600)).to.deep.equal({ at: 1_500, activeRequests: 7, envoys: 1, excluded: [] });
  });
});

describe('gaugesOf (a StreamMetricsMessage encoded with Envoy\'s metrics_service.proto and proto/io/prometheus/client)', () => {
  it('reads the active-request gauges Envoy streams', async () => {
    const { loadEnvoyProtos, messageType } = await import('../../src/xds/protos.js');
    loadEnvoyProtos(['envoy/service/metrics/v3/metrics_service.proto']);
    const T = messageType('envoy.service.metrics.v3.StreamMetricsMessage');
    const bytes = T.encode(T.fromObject({
      identifier: { node: { id: 'envoy-1', cluster: 'edge' } },
      envoy_metrics: [
        { name: 'cluster.ml/llama/http.upstream_rq_active', type: 'GAUGE', metric: [{ gauge: { value: 17 }, timestamp_ms: 1 }] },
        { name: 'cluster.upstream_rq_active', type: 'GAUGE', metric: [{ label: [{ name: 'envoy_cluster_name', value: 'ml/b/http' }], gauge: { value: 4 } }] },
        { name: 'cluster.ml/llama/http.upstream_rq_total', type: 'COUNTER', metric: [{ counter: { value: 900 } }] },
      ],
    })).finish();
    const decoded = T.toObject(T.decode(bytes), { enums: String, longs: String }) as any;
    expect(decoded.identifier.node.id).to.equal('envoy-1');
    expect([...activeByCluster(gaugesOf(decoded.envoy_metrics)).active]).to.deep.equal([['ml/llama/http', 17], ['ml/b/http', 4]]);
  });

  it('decodes only the families the scaler reads from a full Envoy flush (counters, histograms and all)', async () => {
    const { loadEnvoyProtos, messageType } = await import('../../src/xds/protos.js');
    const { decodeStreamMetrics } = await import('../../src/scaler/metrics-service.js');
    loadEnvoyProtos(['envoy/service/metrics/v3/metrics_service.proto']);
    const T = messageType('envoy.service.metrics.v3.StreamMetricsMessage');
    const noise = Array.from({ length: 300 }, (_, i) => i % 3 === 0
      ? { name: `cluster.c${i}.upstream_rq_time`, type: 'HISTOGRAM', metric: [{ histogram: { sample_count: 5, sample_sum: 9, bucket: [{ cumulative_count: 1, upper_bound: 0.5 }] } }] }
      : { name: `http.ingress.downstream_rq_${i}`, type: 'COUNTER', metric: [{ counter: { value: i } }] });
    const bytes = Buffer.from(T.encode(T.fromObject({
      identifier: { node: { id: 'envoy-9' } },
      envoy_metrics: [...noise.slice(0, 150), { name: 'cluster.ml/a/http.upstream_rq_active', type: 'GAUGE', metric: [{ gauge: { value: 11 } }] }, ...noise.slice(150)],
    })).finish());
    const m = decodeStreamMetrics(bytes) as any;
    expect(m.identifier.node.id).to.equal('envoy-9');
    expect(m.envoy_metrics.map((f: any) => f.name)).to.deep.equal(['cluster.ml/a/http.upstream_rq_active']);
    expect([...activeByCluster(gaugesOf(m.envoy_metrics)).active]).to.deep.equal([['ml/a/http', 11]]);
    expect(() => decodeStreamMetrics(bytes.subarray(0, bytes.length - 3))).to.throw(/runs past the end|truncated/);
  });
});
