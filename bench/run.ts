/**
 * inferplane benchmarks. `npm run bench` runs them all at their default sizes and prints the figures with the
 * machine they ran on; `npm run bench -- --streams 10000` is the full fan-out run, `--only
 * fanout|churn|ingest|latency|p2c|p2c-capacity|engine|simulate|startup|weights-cost|soak|large|h2` runs one (p2c needs the Envoy that `npm test` installs; weights-cost, load-aware weights pushed to `--streams` Envoys every second for `--weights-seconds`, runs only when named, as do p2c-capacity, about 10 minutes of per-request simulation, soak, 11
 * minutes at its default size, large, 5,000 services in the production build, and h2, floods of the xDS port
 * with h2load from Debian's nghttp2-client (`--h2-modes ads,ads-tls,handshakes,continuation,resets`, `--h2-server-dir` to
 * measure another checkout; startup, `--startup-dir` likewise), run only when named). `--only fanout --vs go-control-plane` runs the fan-out against
 * the Go peer in bench/peers/ instead (needs Go; `--variants sotw,delta`, `--reps`, `--storm`, `--after-seconds`); without
 * `--vs`, `--variants delta` makes the in-process fan-out's streams Delta. Compare ratios within one run: the machine is small and shared.
 */
import { parseArgs } from 'node:util';
import { churn } from './churn.js';
import { p2c } from './p2c.js';
import { soak } from './soak.js';
import { large } from './large.js';
import { versusPeer } from './vs-peer.js';
import { decisionLatency, ingest } from './scaler.js';
import { fmt, machine, median, now, openStreams, pct, startProfile, waitFor } from './common.js';
import { simulateBench } from './simulate.js';
import { engineCalibration } from './engine.js';
import { p2cCapacity } from './p2c-capacity.js';
import { startup } from './startup.js';
import { weightsCost } from './weights-cost.js';
import { WEIGHT_PUBLISH_INTERVAL_MS } from '../src/balance/weights.js';
import { continuationFlood, h2Flood, resetBehaviour } from './h2-flood.js';
import { createLogger } from '../src/observability/log.js';
import { createMetrics } from '../src/observability/metrics.js';
import { createSnapshotCache } from '../src/xds/cache.js';
import { createPublisher } from '../src/xds/publisher.js';
import { TypeUrl } from '../src/xds/resources.js';
import { createXdsServer } from '../src/xds/server.js';
import type { Model } from '../src/model/model.js';
import { readModel } from '../src/model/validate.js';

const { values } = parseArgs({
  options: {
    streams: { type: 'string', default: '1000' },
    workers: { type: 'string', default: '4' },
    services: { type: 'string', default: '20' },
    endpoints: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '5' },
    profile: { type: 'string' },
    only: { type: 'string' },
    vs: { type: 'string' },
    variants: { type: 'string', default: 'sotw,delta' },
    reps: { type: 'string', default: '2' },
    storm: { type: 'boolean', default: false },
    'after-seconds': { type: 'string', default: '30' },
    'large-services': { type: 'string', default: '5000' },
    'large-endpoints': { type: 'string', default: '35' },
    'large-streams': { type: 'string', default: '10' },
    'large-rewrites': { type: 'string', default: '3' },
    'churn-services': { type: 'string', default: '1000' },
    'churn-endpoints': { type: 'string', default: '20' },
    'churn-streams': { type: 'string', default: '1000' },
    'churn-percent': { type: 'string', default: '1' },
    'churn-seconds': { type: 'string', default: '10' },
    'ingest-envoys': { type: 'string', default: '10000' },
    'ingest-full-envoys': { type: 'string', default: '2000' },
    'ingest-families': { type: 'string', default: '400' },
    'ingest-seconds': { type: 'string', default: '10' },
    'latency-steps': { type: 'string', default: '9' },
    'latency-envoys': { type: 'string', default: '100' },
    'p2c-rounds': { type: 'string', default: '3' },
    'p2c-seconds': { type: 'string', default: '20' },
    'p2c-rps': { type: 'string', default: '400' },
    'soak-streams': { type: 'string', default: '10000' },
    'soak-seconds': { type: 'string', default: '600' },
    'soak-hold': { type: 'string', default: '10' },
    'nack-streams': { type: 'string', default: '1000' },
    'nack-changes': { type: 'string', default: '10' },
    'h2-modes': { type: 'string', default: 'ads,ads-tls,handshakes,continuation,resets' },
    'h2-server-dir': { type: 'string', default: '.' },
    'h2-seconds': { type: 'string', default: '15' },
    'h2-rps': { type: 'string', default: '25000' },
    'p2c-capacity-minutes': { type: 'string', default: '5' },
    'p2c-capacity-weights': { type: 'string' },
    'startup-rounds': { type: 'string', default: '7' },
    'startup-dir': { type: 'string' },
    'weights-seconds': { type: 'string', default: '30' },
  },
});
const STREAMS = Number(values.streams);
const WORKERS = Number(values.workers);
const SERVICES = Number(values.services);
const ENDPOINTS = Number(values.endpoints);
const ROUNDS = Number(values.rounds);
/** The endpoints file of round `round`: each round adds one endpoint to the first service. */
function rawFleet(round: number): { services: object[] } {
  return {
    services: Array.from({ length: SERVICES }, (_, s) => ({
      name: `model-${s}`,
      endpoints: Array.from({ length: ENDPOINTS + (s === 0 ? round : 0) }, (_, e) => ({ address: `10.${s}.${e >> 8}.${e & 255}`, port: 8000, zone: `zone-${e % 3}` })),
    })),
  };
}

function fleet(round: number): Model {
  const m = readModel(rawFleet(round));
  if (!m.ok) throw new Error(JSON.stringify(m.error));
  return m.value;
}

async function fanout(): Promise<void> {
  const log = createLogger('error');
  const metrics = createMetrics();
  const cache = createSnapshotCache();
  const publisher = createPublisher({ cache, log, metrics });
  await publisher.publish(fleet(0));
  const server = createXdsServer({ cache, log, metrics });
  const port = await server.listen('127.0.0.1:0');
  const edsNames = Array.from({ length: SERVICES }, (_, s) => `model-${s}/http`);

  global.gc?.();
  const rssBefore = process.memoryUsage().rss;
  const openStart = now();
  // In-process, one variant: Delta when it is the only one named (`--variants delta`), else SotW.
  const delta = values.variants === 'delta';
  const workers = await openStreams(`127.0.0.1:${port}`, STREAMS, WORKERS, edsNames, { delta });
  const openSec = (now() - openStart) / 1000;
  // Let ACKs settle, then measure idle memory.
  await new Promise((r) => setTimeout(r, 1000));
  global.gc?.();
  const rssIdle = process.memoryUsage().rss;
  const heapIdle = process.memoryUsage().heapUsed;
  console.log(`\nfan-out: ${server.streamCount()} ADS ${delta ? 'Delta' : 'SotW'} streams (each its own connection) from ${WORKERS} worker processes; ${SERVICES} services × ${ENDPOINTS} endpoints; opened in ${fmt(openSec)} s`);
  console.log(`  idle memory: RSS +${fmt((rssIdle - rssBefore) / 2 ** 20)} MiB = ${fmt((rssIdle - rssBefore) / STREAMS / 1024)} KiB per stream (heap used ${fmt(heapIdle / 2 ** 20)} MiB)`);

  const rows: { p50: number; p99: number; max: number; cpu: number }[] = [];
  const profiler = values.profile ? await startProfile() : undefined;
  for (let round = 1; round <= ROUNDS; round++) {
    const target = await (async () => {
      const cpu0 = process.cpuUsage();
      const t0 = now();
      const snap = await publisher.publish(fleet(round));
      if (!snap.ok) throw new Error(snap.error.join('\n'));
      return { t0, cpu0, version: snap.value.types[TypeUrl.Endpoint].version };
    })();
    const results = await Promise.all(workers.map((w) => {
      const p = waitFor<{ times: number[] }>(w, 'times');
      w.send({ cmd: 'await', version: target.version });
      return p;
    }));
    const cpu = process.cpuUsage(target.cpu0);
    const lat = results.flatMap((r) => r.times).map((t) => t - target.t0).sort((a, b) => a - b);
    const row = { p50: pct(lat, 50), p99: pct(lat, 99), max: lat[lat.length - 1]!, cpu: (cpu.user + cpu.system) / 1e6 };
    rows.push(row);
    console.log(`  round ${round}: ${lat.length} streams got the new assignment: p50 ${fmt(row.p50)} ms, p99 ${fmt(row.p99)} ms, max ${fmt(row.max)} ms; server CPU ${fmt(row.cpu, 3)} s`);
    await new Promise((r) => setTimeout(r, 300));
  }
  if (profiler) await profiler.stop(values.profile!);
  console.log(`  median of ${ROUNDS} rounds: p50 ${fmt(median(rows.map((r) => r.p50)))} ms, p99 ${fmt(median(rows.map((r) => r.p99)))} ms, max ${fmt(median(rows.map((r) => r.max)))} ms, server CPU ${fmt(median(rows.map((r) => r.cpu)), 3)} s per change`);
  for (const w of workers) w.send({ cmd: 'close' });
  await server.shutdown(2000);
}

console.log(`inferplane benchmarks on ${machine()}`);
if (values.vs !== undefined && values.vs !== 'go-control-plane') throw new Error(`--vs ${values.vs}: the only peer is go-control-plane`);
if ((!values.only || values.only === 'fanout') && values.vs) {
  await versusPeer({
    streams: STREAMS, workers: WORKERS, rounds: ROUNDS, reps: Number(values.reps), storm: values.storm ?? false, afterSeconds: Number(values['after-seconds']),
    variants: values.variants.split(',') as ('sotw' | 'delta')[], fleet, rawFleet, edsNames: Array.from({ length: SERVICES }, (_, s) => `model-${s}/http`),
    profile: values.profile,
  });
} else if (!values.only || values.only === 'fanout') await fanout();
if (!values.only || values.only === 'churn') {
  await churn({
    services: Number(values['churn-services']),
    endpoints: Number(values['churn-endpoints']),
    streams: Number(values['churn-streams']),
    workers: WORKERS,
    percentPerSecond: Number(values['churn-percent']),
    seconds: Number(values['churn-seconds']),
    profile: values.profile,
  });
}
if (!values.only || values.only === 'ingest') {
  const base = { workers: WORKERS, seconds: Number(values['ingest-seconds']) };
  await ingest({ ...base, envoys: Number(values['ingest-envoys']), families: 3 });
  await ingest({ ...base, envoys: Number(values['ingest-full-envoys']), families: Number(values['ingest-families']) });
}
if (!values.only || values.only === 'latency') await decisionLatency({ steps: Number(values['latency-steps']), envoys: Number(values['latency-envoys']) });
if (!values.only || values.only === 'p2c') {
  await p2c({ rounds: Number(values['p2c-rounds']), seconds: Number(values['p2c-seconds']), rps: Number(values['p2c-rps']), slowdown: 6, maxTokens: 50, upstreams: 4, slowFactor: 3 });
}
if (!values.only || values.only === 'engine') engineCalibration();
if (values['p2c-capacity-weights'] !== undefined && !['equal', 'load'].includes(values['p2c-capacity-weights'])) throw new Error(`--p2c-capacity-weights must be equal or load, got "${values['p2c-capacity-weights']}"`);
if (values.only === 'p2c-capacity') p2cCapacity(Number(values['p2c-capacity-minutes']), values['p2c-capacity-weights'] as 'equal' | 'load' | undefined);
if (!values.only || values.only === 'startup') await startup(Number(values['startup-rounds']), values['startup-dir']);
if (values.only === 'weights-cost') await weightsCost({ streams: STREAMS, workers: WORKERS, services: SERVICES, endpoints: ENDPOINTS, seconds: Number(values['weights-seconds']), cadencesMs: [1000, WEIGHT_PUBLISH_INTERVAL_MS] });
if (!values.only || values.only === 'simulate') await simulateBench();
if (values.only === 'large') {
  await large({ services: Number(values['large-services']), endpoints: Number(values['large-endpoints']), streams: Number(values['large-streams']), rewrites: Number(values['large-rewrites']) });
}
if (values.only === 'h2') {
  const serverDir = values['h2-server-dir'];
  for (const mode of values['h2-modes'].split(',')) {
    if (mode === 'ads' || mode === 'ads-tls' || mode === 'handshakes') await h2Flood({ mode, serverDir, seconds: Number(values['h2-seconds']), rps: Number(values['h2-rps']) });
    else if (mode === 'continuation') await continuationFlood({ serverDir, seconds: 35 });
    else if (mode === 'resets') await resetBehaviour({ serverDir });
    else throw new Error(`--h2-modes: ${mode} is not ads, ads-tls, handshakes, continuation or resets`);
  }
}
if (values.only === 'soak') {
  await soak({
    streams: Number(values['soak-streams']), workers: WORKERS, seconds: Number(values['soak-seconds']), holdSeconds: Number(values['soak-hold']),
    nackStreams: Number(values['nack-streams']), nackChanges: Number(values['nack-changes']),
  });
}
process.exit(0);
