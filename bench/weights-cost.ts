/**
 * What load-aware weights cost the control plane (`npm run bench -- --only weights-cost`): an in-process xDS
 * server with `streams` ADS streams (SotW, each its own connection, from worker processes), `services` services of
 * `endpoints` endpoints with loadAwareWeights on, and for `seconds` seconds a publication of new weights for
 * every service (the worst case: in each, one pod of every service moves a grid step, so every Envoy gets every
 * assignment again, through the EDS fast path) once per cadence: every second, and every
 * WEIGHT_PUBLISH_INTERVAL_MS (the controller's limit). Prints the server's CPU as a share of one core over the
 * run, and how long the Envoys took to get each publication. The pods' scraping is not included: the scaler
 * reads the same /metrics already, and its cost is per pod, not per Envoy.
 */
import { createLogger } from '../src/observability/log.js';
import { createMetrics } from '../src/observability/metrics.js';
import { applyWeights, endpointKey, type Model } from '../src/model/model.js';
import { readModel } from '../src/model/validate.js';
import { createSnapshotCache } from '../src/xds/cache.js';
import { createPublisher } from '../src/xds/publisher.js';
import { TypeUrl } from '../src/xds/resources.js';
import { createXdsServer } from '../src/xds/server.js';
import { DEFAULT_WEIGHT_OPTIONS, WEIGHT_PUBLISH_INTERVAL_MS } from '../src/balance/weights.js';
import { fmt, machine, median, now, openStreams, pct, waitFor } from './common.js';

/** Options of {@link weightsCost}. */
export interface WeightsCostOptions {
  readonly streams: number;
  readonly workers: number;
  readonly services: number;
  readonly endpoints: number;
  readonly seconds: number;
  /** Milliseconds between publications, one run each. */
  readonly cadencesMs: readonly number[];
}

function model(services: number, endpoints: number): Model {
  const m = readModel({
    services: Array.from({ length: services }, (_, s) => ({
      name: `model-${s}`,
      settings: { loadAwareWeights: true },
      endpoints: Array.from({ length: endpoints }, (_, e) => ({ address: `10.${s}.${e >> 8}.${e & 255}`, port: 8000, zone: `zone-${e % 3}` })),
    })),
  });
  if (!m.ok) throw new Error(JSON.stringify(m.error));
  return m.value;
}

/** Runs the benchmark and prints its figures. */
export async function weightsCost(o: WeightsCostOptions): Promise<void> {
  const log = createLogger('error');
  const metrics = createMetrics();
  const cache = createSnapshotCache();
  const publisher = createPublisher({ cache, log, metrics });
  const base = model(o.services, o.endpoints);
  // Each service's weights: every pod at the full weight but one, whose weight walks a grid step each second.
  const weights = new Map<string, Map<string, number>>(base.services.map((s) => [s.name, new Map(s.endpoints.map((e) => [endpointKey(e.address, 8000), DEFAULT_WEIGHT_OPTIONS.mean]))]));
  await publisher.publish(applyWeights(base, (s) => weights.get(s)));
  const server = createXdsServer({ cache, log, metrics });
  const port = await server.listen('127.0.0.1:0');
  const edsNames = base.services.map((s) => `${s.name}/http`);
  const workers = await openStreams(`127.0.0.1:${port}`, o.streams, o.workers, edsNames);
  await new Promise((r) => setTimeout(r, 1000));
  console.log(`\nload-aware weights at fleet scale: ${server.streamCount()} ADS SotW streams from ${o.workers} worker processes, each subscribed to all ${o.services} services × ${o.endpoints} endpoints; ${machine()}`);
  for (const cadence of o.cadencesMs) {
    const p99s: number[] = [];
    const cpu0 = process.cpuUsage();
    const t0 = now();
    for (let second = 1; second <= Math.max(1, Math.round((o.seconds * 1000) / cadence)); second++) {
      const start = now();
      const changed = new Set<string>();
      for (let k = 0; k < o.services; k++) {
        const s = base.services[k]!;
        const next = new Map(weights.get(s.name)!);
        const key = endpointKey(s.endpoints[0]!.address, 8000);
        next.set(key, second % 2 === 0 ? DEFAULT_WEIGHT_OPTIONS.mean : Math.round(DEFAULT_WEIGHT_OPTIONS.mean / 1.1));
        weights.set(s.name, next);
        changed.add(s.name);
      }
      const snap = await publisher.publish(applyWeights(base, (s) => weights.get(s)), changed);
      if (!snap.ok) throw new Error(snap.error.join('\n'));
      const version = snap.value.types[TypeUrl.Endpoint].version;
      const results = await Promise.all(workers.map((w) => {
        const p = waitFor<{ times: number[] }>(w, 'times');
        w.send({ cmd: 'await', version });
        return p;
      }));
      const lat = results.flatMap((r) => r.times).map((t) => t - start).sort((a, b) => a - b);
      p99s.push(pct(lat, 99));
      const left = cadence - (now() - start);
      if (left > 0) await new Promise((r) => setTimeout(r, left));
    }
    const c = process.cpuUsage(cpu0);
    const wall = (now() - t0) / 1000;
    console.log(`  every service's weights published every ${fmt(cadence / 1000, 0)} s${cadence === WEIGHT_PUBLISH_INTERVAL_MS ? ' (the controller\'s limit)' : ''}, ${fmt(wall, 0)} s: server CPU ${fmt((100 * (c.user + c.system)) / 1e6 / wall)}% of one core; every stream had each publication within p99 ${fmt(median(p99s))} ms (median over the publications)`);
  }
  for (const w of workers) w.send({ cmd: 'close' });
  await server.shutdown(2000);
}
