/**
 * Scaler benchmarks.
 * - ingest: N Envoys (worker processes, each stream its own connection) stream stats to inferplane's
 *   MetricsService every second at random phases; inferplane's CPU per second while it keeps every Envoy's
 *   latest active requests. Two message shapes: only the active-request gauges (an Envoy with a stats matcher)
 *   and a full flush (hundreds of counters and histograms around them, an Envoy without one).
 * - decision latency: a fleet of Envoys flushing every second at random phases, the scaler at its default
 *   1 s period with the default policy, the Deployment behind the API-server stand-in. The fleet's load
 *   doubles; measured: from the load step to the scale request reaching the API server (and, for reference,
 *   until every Envoy has flushed the new load).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { createLogger } from '../src/observability/log.js';
import { createMetrics } from '../src/observability/metrics.js';
import { createMetricsService } from '../src/scaler/metrics-service.js';
import { createFleetStats } from '../src/scaler/stats.js';
import { serve } from '../src/serve.js';
import { createSnapshotCache } from '../src/xds/cache.js';
import { createXdsServer } from '../src/xds/server.js';
import { DEFAULT_LIMITS } from '../src/xds/stream.js';
import { startApiServer } from '../test/support/apiserver.js';
import { envoyStream, report } from '../test/support/envoy-stats.js';
import { kubeConfigFor } from '../test/support/kube.js';
import { fmt, forkTs, median, now, pct, waitFor } from './common.js';

/** Sizes of an ingest run. */
export interface IngestOptions {
  envoys: number;
  workers: number;
  /** Metric families per flush (3 = only the active-request gauges). */
  families: number;
  seconds: number;
}

export async function ingest(o: IngestOptions): Promise<void> {
  const log = createLogger('error');
  const metrics = createMetrics();
  const stats = createFleetStats();
  const server = createXdsServer({ cache: createSnapshotCache(), log, metrics, services: [createMetricsService({ stats, log, metrics })] });
  const port = await server.listen('127.0.0.1:0');
  const workers: ChildProcess[] = Array.from({ length: o.workers }, () => forkTs('stats-worker.ts'));
  const per = Math.ceil(o.envoys / o.workers);
  const openStart = now();
  const opened = await Promise.all(workers.map((w, i) => {
    const p = waitFor<{ bytes: number }>(w, 'opened');
    w.send({ cmd: 'open', address: `127.0.0.1:${port}`, count: Math.max(0, Math.min(per, o.envoys - i * per)), base: i * per, families: o.families, intervalMs: 1000 });
    return p;
  }));
  const openSec = (now() - openStart) / 1000;
  // Every Envoy on its interval, and the backlog of the opening (every first message at once) drained.
  await new Promise((r) => setTimeout(r, 5000));
  const received = async () => (await metrics.value('inferplane_stats_reports_total', { outcome: 'recorded' })) + (await metrics.value('inferplane_stats_reports_total', { outcome: 'throttled' }));
  const sentNow = async () => (await Promise.all(workers.map((w) => {
    const p = waitFor<{ sent: number }>(w, 'sent');
    w.send({ cmd: 'sent' });
    return p;
  }))).reduce((n, r) => n + r.sent, 0);
  const r0 = await received();
  const s0 = await sentNow();
  const cpu0 = process.cpuUsage();
  const elu0 = performance.eventLoopUtilization();
  const t0 = now();
  await new Promise((r) => setTimeout(r, o.seconds * 1000));
  const secs = (now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const elu = performance.eventLoopUtilization(elu0);
  const got = (await received()) - r0;
  const sent = (await sentNow()) - s0;
  const cores = (cpu.user + cpu.system) / 1e6 / secs;
  const sample = stats.sample('ml/llama-8b', Date.now());
  console.log(`\nstats ingest: ${o.envoys} Envoys (each its own connection, ${o.workers} worker processes), 1 s flush, ${o.families} metric families per flush (${fmt(opened[0]!.bytes / 1024)} KiB); opened in ${fmt(openSec)} s`);
  console.log(`  over ${fmt(secs)} s: clients sent ${fmt(sent / secs, 0)}/s, inferplane received ${fmt(got / secs, 0)} reports/s; inferplane CPU ${fmt(cores, 3)} s per second (event loop ${fmt(elu.utilization * 100, 0)}% busy) = ${fmt((cores * 1e6) / (got / secs), 1)} µs per report; fresh reporters in the fleet total: ${sample?.envoys ?? 0}`);
  for (const w of workers) w.send({ cmd: 'close' });
  await server.shutdown(1000);
}

/** Sizes of a decision-latency run. */
export interface LatencyOptions {
  steps: number;
  envoys: number;
}

export async function decisionLatency(o: LatencyOptions): Promise<void> {
  const api = await startApiServer();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-bench-'));
  fs.writeFileSync(path.join(dir, 'endpoints.yaml'), 'services:\n  - name: ml/llama-8b\n    endpoints: [{ address: 10.0.0.1, port: 8000 }]\n');
  // The default policy: 126 in flight per pod, 60 s / 6 s windows, 1 s period.
  fs.writeFileSync(path.join(dir, 'policy.yaml'), 'services:\n  ml/llama-8b: { deployment: llama-8b, maxReplicas: 100000 }\n');
  let replicas = 10;
  api.apply({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'llama-8b', namespace: 'ml' }, spec: { replicas }, status: { replicas, readyReplicas: replicas } });
  const running = await serve({
    discovery: { kind: 'file', path: path.join(dir, 'endpoints.yaml') },
    xdsAddress: '127.0.0.1:0', adminHost: '127.0.0.1', adminPort: 0, limits: DEFAULT_LIMITS, maxMessageBytes: 1 << 20,
    log: createLogger('error'), instance: 'bench',
    scaler: { policy: { kind: 'file', path: path.join(dir, 'policy.yaml') }, dryRun: false, kubeConfig: kubeConfigFor(api.url) },
  });
  // The fleet: every Envoy flushes once a second at its own phase; `load` is the fleet's total in flight.
  let load = 126 * replicas;
  let stepAt = 0;
  let reportedNew = 0;
  let allReportedAt = 0;
  const streams = Array.from({ length: o.envoys }, (_, i) => ({ s: envoyStream(`127.0.0.1:${running.xdsPort}`), node: `envoy-${i}` }));
  const timers = streams.map(({ s, node }, i) => setTimeout(() => {
    const send = () => {
      if (stepAt > 0 && ++reportedNew === o.envoys) allReportedAt = now();
      s.send(report(node, { 'ml/llama-8b/http': Math.round(load / o.envoys) }));
    };
    send();
    timers[i] = setInterval(send, 1000);
  }, Math.random() * 1000));
  // The Deployment controller, with pods ready at once; it also notes when a scale request changed spec.
  let changedAt = 0;
  const controller = setInterval(() => {
    const d = api.get('deployments', 'ml', 'llama-8b')!;
    const want = (d['spec'] as { replicas: number }).replicas;
    if (want !== replicas) {
      if (stepAt > 0 && changedAt === 0) changedAt = now();
      replicas = want;
      api.apply({ ...d, status: { replicas: want, readyReplicas: want } });
    }
  }, 2);
  const quiet = async () => {
    for (let last = replicas, since = now(); now() - since < 3000; await new Promise((r) => setTimeout(r, 100))) {
      if (replicas !== last) {
        last = replicas;
        since = now();
      }
    }
  };
  await new Promise((r) => setTimeout(r, 3000));
  await quiet();
  const total: number[] = [];
  const flushed: number[] = [];
  for (let step = 0; step < o.steps; step++) {
    // A random moment within the flush and decision cycles.
    await new Promise((r) => setTimeout(r, Math.random() * 1000));
    changedAt = allReportedAt = reportedNew = 0;
    stepAt = now();
    load *= 2;
    while (changedAt === 0) await new Promise((r) => setTimeout(r, 5));
    total.push(changedAt - stepAt);
    while (allReportedAt === 0) await new Promise((r) => setTimeout(r, 5));
    flushed.push(allReportedAt - stepAt);
    stepAt = 0;
    await quiet();
  }
  total.sort((a, b) => a - b);
  flushed.sort((a, b) => a - b);
  console.log(`\ndecision latency: ${o.envoys} Envoys flushing every 1 s (random phases), scaler period 1 s, default policy; the fleet's load doubles ${o.steps} times`);
  console.log(`  load step → scale request at the API server: median ${fmt(median(total), 0)} ms, p90 ${fmt(pct(total, 90), 0)} ms, max ${fmt(total[total.length - 1]!, 0)} ms`);
  console.log(`  (load step → every Envoy has flushed the new load: median ${fmt(median(flushed), 0)} ms, max ${fmt(flushed[flushed.length - 1]!, 0)} ms; ${replicas} pods at the end)`);
  clearInterval(controller);
  for (const t of timers) clearInterval(t);
  for (const { s } of streams) {
    s.end();
    s.close();
  }
  await running.stop(500);
  await api.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
