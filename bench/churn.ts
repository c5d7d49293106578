/**
 * Endpoint churn: S services × E endpoints behind the stand-in Kubernetes API server (its own process), read by
 * inferplane's real Kubernetes source; N streams (worker processes) subscribed to every cluster's endpoints.
 * For R seconds, P% of the pods change per second (each event marks a distinct pod not ready). For every
 * event and stream: the time from the API server applying the event to the stream receiving the first
 * snapshot that contains it. Also: event → published (inferplane's own part) and CPU per 1,000 events.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createMemoryLogger } from '../src/observability/log.js';
import { createMetrics } from '../src/observability/metrics.js';
import { DEFAULT_LISTENER, type Model } from '../src/model/model.js';
import { createEventRecorder } from '../src/sources/kubernetes/events.js';
import { createKubernetesSource } from '../src/sources/kubernetes/source.js';
import { createSnapshotCache } from '../src/xds/cache.js';
import { createPublisher } from '../src/xds/publisher.js';
import { TypeUrl } from '../src/xds/resources.js';
import { createXdsServer } from '../src/xds/server.js';
import { kubeConfigFor, service, slice, type EndpointSpec } from '../test/support/kube.js';
import { fmt, forkTs, now, openStreams, pct, startProfile, waitFor } from './common.js';

/** Sizes of a churn run. */
export interface ChurnOptions {
  services: number;
  endpoints: number;
  streams: number;
  workers: number;
  percentPerSecond: number;
  seconds: number;
  /** Write a CPU profile of inferplane's process during the churn to this file. */
  profile?: string | undefined;
}

const address = (s: number, e: number) => `10.${s >> 8}.${s & 255}.${e + 1}`;

export async function churn(o: ChurnOptions): Promise<void> {
  const apiProc = forkTs('apiserver-process.ts');
  // The client workers are forked now, while this process is small: forking later copies the page tables of a
  // large heap (30-110 ms each here), a stop of the harness's own that would be counted as inferplane's.
  const children = Array.from({ length: o.workers }, () => forkTs('fanout-worker.ts'));
  const { url } = await waitFor<{ url: string }>(apiProc, 'url');
  let applySeq = 0;
  const apply = async (objs: object[]) => {
    const id = ++applySeq;
    const p = waitFor<{ at: number; id: number }>(apiProc, 'applied');
    apiProc.send({ cmd: 'apply', objs, id });
    return (await p).at;
  };
  const state = Array.from({ length: o.services }, () => Array.from({ length: o.endpoints }, () => true));
  const sliceOf = (s: number) => slice('ml', `model-${s}`, `model-${s}-1`, state[s]!.map((ready, e): EndpointSpec => ({ address: address(s, e), ready, zone: `zone-${e % 3}` })));
  const objs: object[] = [];
  for (let s = 0; s < o.services; s++) objs.push(service('ml', `model-${s}`), sliceOf(s));
  for (let i = 0; i < objs.length; i += 200) await apply(objs.slice(i, i + 200));

  const log = createMemoryLogger();
  const metrics = createMetrics();
  const cache = createSnapshotCache();
  const publisher = createPublisher({ cache, log, metrics });
  const kc = kubeConfigFor(url);
  // Events waiting to be seen in a model, and the publish index that first contained each.
  const pending = new Map<number, { s: number; e: number; at: number }>();
  const included: { at: number; index: number }[] = [];
  const published: { version: string; at: number }[] = [];
  let building = 0; // publishes not yet settled
  const source = createKubernetesSource({
    kubeConfig: kc, namespaces: ['ml'], listener: DEFAULT_LISTENER, log, events: createEventRecorder(kc, log, 'bench'),
    onModel: (m: Model, endpointsOnly) => {
      // Events first seen in this model; they count as delivered with the build that covers it.
      const seen: { id: number; at: number }[] = [];
      // Only the services with pending events: this runs on inferplane's loop, and is not inferplane's work.
      const wanted = new Set<string>();
      for (const ev of pending.values()) wanted.add(`ml/model-${ev.s}`);
      const byName = new Map<string, Model['services'][number]>();
      if (wanted.size > 0) for (const s of m.services) if (wanted.has(s.name)) byName.set(s.name, s);
      for (const [id, ev] of pending) {
        const ep = byName.get(`ml/model-${ev.s}`)?.endpoints.find((x) => x.address === address(ev.s, ev.e));
        if (ep && !ep.ready) {
          seen.push({ id, at: ev.at });
          pending.delete(id);
        }
      }
      building++;
      void publisher.publish(m, endpointsOnly).then((r) => {
        building--;
        if (!r.ok) throw new Error(r.error.join('\n'));
        const index = published.length;
        published.push({ version: r.value.types[TypeUrl.Endpoint].version, at: now() });
        for (const { id, at } of seen) included[id] = { at, index };
      });
    },
  });
  // This process is inferplane's side (source, publisher, xDS server): its event loop's longest stops.
  // Stops are counted from the watch's start: making the server and binding its port come before, as startup.
  const server = createXdsServer({ cache, log, metrics });
  const port = await server.listen('127.0.0.1:0');
  const stops = monitorEventLoopDelay({ resolution: 10 });
  stops.enable();
  const tSync = now();
  source.start();
  while (!publisher.ready()) await new Promise((r) => setTimeout(r, 20));
  console.log(`\n  first list to first publish: ${fmt((now() - tSync) / 1000, 2)} s, longest event-loop stop ${fmt(stops.max / 1e6)} ms`);
  const profiler = o.profile ? await startProfile() : undefined;
  stops.reset();
  const names = Array.from({ length: o.services }, (_, s) => `ml/model-${s}/http`);
  const t0 = now();
  const workers = await openStreams(`127.0.0.1:${port}`, o.streams, o.workers, names, { children });
  console.log(`\nchurn: ${o.services} services × ${o.endpoints} endpoints (Kubernetes source, stand-in API server in its own process); ${server.streamCount()} streams each subscribed to all ${o.services} assignments, opened in ${fmt((now() - t0) / 1000)} s`);
  await Promise.all(workers.map((w) => {
    const p = waitFor(w, 'recording');
    w.send({ cmd: 'record' });
    return p;
  }));

  // Distinct pods, in a fixed pseudo-random order, so each event's inclusion is unambiguous.
  const total = o.services * o.endpoints;
  const perSecond = Math.max(1, Math.round((total * o.percentPerSecond) / 100));
  const events = Math.min(total, perSecond * o.seconds);
  const order = Array.from({ length: total }, (_, i) => (i * 7919) % total);
  const tickMs = 50;
  const perTick = perSecond / (1000 / tickMs);
  const cpu0 = process.cpuUsage();
  const start = now();
  let sent = 0;
  while (sent < events) {
    const due = Math.min(events, Math.round(((now() - start) / tickMs + 1) * perTick));
    const touched = new Set<number>();
    const batch: { id: number; s: number; e: number }[] = [];
    for (; sent < due; sent++) {
      const k = order[sent]!;
      const s = Math.floor(k / o.endpoints);
      const e = k % o.endpoints;
      state[s]![e] = false;
      touched.add(s);
      batch.push({ id: sent, s, e });
    }
    if (batch.length > 0) {
      const at = await apply([...touched].map(sliceOf));
      for (const b of batch) pending.set(b.id, { s: b.s, e: b.e, at });
    }
    await new Promise((r) => setTimeout(r, Math.max(0, start + ((sent / perTick) * tickMs) - now())));
  }
  while (pending.size > 0 || building > 0) await new Promise((r) => setTimeout(r, 20));
  const lastIndex = published.length - 1;
  // Every stream must end holding the last snapshot.
  await Promise.all(workers.map((w) => {
    const p = waitFor(w, 'times');
    w.send({ cmd: 'await', version: published[lastIndex]!.version });
    return p;
  }));
  const cpu = process.cpuUsage(cpu0);
  if (profiler) await profiler.stop(o.profile!);
  const reports = await Promise.all(workers.map((w) => {
    const p = waitFor<{ logs: [string, number][][] }>(w, 'report');
    w.send({ cmd: 'report' });
    return p;
  }));
  const indexOf = new Map(published.map((p, i) => [p.version, i]));
  const deliveredAt: number[][] = []; // per stream: earliest receipt time of a snapshot at index ≥ i, for every i
  for (const r of reports) {
    for (const log of r.logs) {
      const first = new Array<number>(lastIndex + 2).fill(Infinity);
      for (const [version, at] of log) {
        const i = indexOf.get(version);
        if (i !== undefined && at < first[i]!) first[i] = at;
      }
      for (let i = lastIndex; i >= 0; i--) first[i] = Math.min(first[i]!, first[i + 1]!);
      deliveredAt.push(first);
    }
  }
  const toPublish = included.map((x) => published[x.index]!.at - x.at).sort((a, b) => a - b);
  const toDeliver: number[] = [];
  let missing = 0;
  for (const x of included) {
    for (const first of deliveredAt) {
      const t = first[x.index]!;
      if (t === Infinity) missing++;
      else toDeliver.push(t - x.at);
    }
  }
  toDeliver.sort((a, b) => a - b);
  const cpuSec = (cpu.user + cpu.system) / 1e6;
  console.log(`  ${events} events in ${o.seconds} s (${o.percentPerSecond}% of pods per second = ${perSecond}/s); ${published.length} snapshots published (${await metrics.value('inferplane_snapshots_total', { result: 'fast-path' })} by the endpoint fast path)`);
  console.log(`  event → published: p50 ${fmt(pct(toPublish, 50))} ms, p99 ${fmt(pct(toPublish, 99))} ms`);
  console.log(`  event → delivered (${toDeliver.length} event×stream pairs${missing ? `, ${missing} never delivered` : ''}): p50 ${fmt(pct(toDeliver, 50))} ms, p99 ${fmt(pct(toDeliver, 99))} ms, max ${fmt(toDeliver[toDeliver.length - 1] ?? NaN)} ms`);
  console.log(`  longest event-loop stop while streams opened and pods churned: ${fmt(stops.max / 1e6)} ms`);
  console.log(`  inferplane CPU: ${fmt(cpuSec, 2)} s over the run = ${fmt((cpuSec / events) * 1000, 3)} s per 1,000 events (informers, model, snapshots, fan-out to ${o.streams} streams)`);
  for (const w of workers) w.send({ cmd: 'close' });
  await source.stop();
  await server.shutdown(2000);
  apiProc.send({ cmd: 'close' });
}
