/**
 * One worker process of the stats-ingest benchmark: opens `count` Envoy MetricsService streams, each on its own
 * connection, and sends one flush per stream every `intervalMs` at a random phase, as a fleet of Envoys with
 * the metrics_service sink does. The first message of a stream carries the node id (as Envoy sends it); each
 * carries `families` metric families in all: one upstream_rq_active gauge per served cluster, and (for a full
 * flush, as an Envoy without a stats matcher sends) counters and histograms around it. Messages are encoded
 * once and reused: the load generator shares the server's two cores.
 */
import * as grpc from '@grpc/grpc-js';
import { metricsServiceClient } from '../src/scaler/relay.js';
import { loadEnvoyProtos, messageType } from '../src/xds/protos.js';

type Msg = { cmd: 'open'; address: string; count: number; base: number; families: number; intervalMs: number } | { cmd: 'sent' } | { cmd: 'close' };

loadEnvoyProtos(['envoy/service/metrics/v3/metrics_service.proto']);
const Message = messageType('envoy.service.metrics.v3.StreamMetricsMessage');
const Client = metricsServiceClient();

const clusters = ['ml/llama-8b/http', 'ml/llama-70b/http', 'inferplane_xds'];
/** A flush's families: the active gauges, then (up to `families`) typical counters and histograms. */
function flush(families: number, first: string | undefined): Buffer {
  const active = clusters.map((c, i) => ({ name: `cluster.${c}.upstream_rq_active`, type: 'GAUGE', metric: [{ gauge: { value: 10 + i }, timestamp_ms: 1 }] }));
  const other = Array.from({ length: Math.max(0, families - active.length) }, (_, i) => i % 4 === 0
    ? { name: `cluster.${clusters[i % 3]}.upstream_rq_time_${i}`, type: 'HISTOGRAM', metric: [{ histogram: { sample_count: 100, sample_sum: 2500, bucket: [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000].map((b, j) => ({ upper_bound: b, cumulative_count: j * 10 })) }, timestamp_ms: 1 }] }
    : { name: `cluster.${clusters[i % 3]}.upstream_stat_${i}`, type: 'COUNTER', metric: [{ counter: { value: i * 7 }, timestamp_ms: 1 }] });
  return Buffer.from(Message.encode(Message.fromObject({ ...(first && { identifier: { node: { id: first, cluster: 'bench' } } }), envoy_metrics: [...other.slice(0, other.length >> 1), ...active, ...other.slice(other.length >> 1)] })).finish());
}

const clients: grpc.Client[] = [];
const timers: NodeJS.Timeout[] = [];
let sent = 0;

process.on('message', async (m: Msg) => {
  if (m.cmd === 'open') {
    const body = flush(m.families, undefined);
    for (let i = 0; i < m.count; i++) {
      // A channel option unique per client gives each stream its own connection, as each Envoy has.
      const client = new Client(m.address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'inferplane.bench.id': m.base + i });
      clients.push(client);
      const call = (client as any).StreamMetrics(() => undefined);
      call.on('error', () => undefined);
      call.write(flush(m.families, `envoy-${m.base + i}`));
      sent++;
      const phase = Math.random() * m.intervalMs;
      timers.push(setTimeout(() => {
        timers.push(setInterval(() => {
          call.write(body);
          sent++;
        }, m.intervalMs));
      }, phase));
      if (i % 100 === 99) await new Promise((r) => setImmediate(r));
    }
    process.send!({ cmd: 'opened', bytes: body.length });
  } else if (m.cmd === 'sent') {
    process.send!({ cmd: 'sent', sent });
  } else {
    for (const t of timers) clearTimeout(t);
    for (const c of clients) c.close();
    process.exit(0);
  }
});
