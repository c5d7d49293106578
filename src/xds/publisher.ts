import type { Model } from '../model/model.js';
import type { Logger } from '../observability/log.js';
import { LATENCY_BUCKETS, type Metrics } from '../observability/metrics.js';
import { err, ok, type Result } from '../result.js';
import { translateSteps } from '../translate/translate.js';
import { runSteps, runStepsAsync, type SliceOptions, type Steps } from '../steps.js';
import { readModel } from '../model/validate.js';
import { DEFAULT_GROUP, zoneGroup, type SnapshotCache } from './cache.js';
import { buildSnapshotSteps, MAX_RESPONSE_BYTES, patchEndpointsSteps, type Snapshot } from './snapshot.js';
import { loadAssignment } from '../translate/endpoint.js';
import type { ResourceSpec } from '../translate/common.js';

/** Turns models into snapshots and sets them on the cache for one group. */
export interface Publisher {
  /**
   * Translates and publishes a model. On failure (an inconsistent or unencodable result) nothing changes:
   * the previous snapshot keeps serving and the problems are returned and logged. With `endpointsOnly`, the
   * caller promises that only the endpoints of those services changed: their ClusterLoadAssignments are
   * rebuilt and nothing else is translated (CDS, LDS and RDS keep their objects and versions).
   *
   * The work runs in slices that give the event loop back (see src/steps.ts), one model at a time. Models
   * that arrive while one is being built wait, and only the newest of them is built next (their
   * `endpointsOnly` sets merged); each caller's promise resolves with the outcome of the build that covered
   * its model. A small model is published before the call returns.
   *
   * `eventAt` (epoch ms) is when the change this model carries was first seen by its source (a Kubernetes
   * event, a file change); the time from it to publication is observed in a histogram.
   */
  publish(model: Model, endpointsOnly?: ReadonlySet<string>, eventAt?: number): Promise<Result<Snapshot, string[]>>;
  /** True once a first complete snapshot has been published. */
  ready(): boolean;
  /** The model of the snapshot being served; undefined before the first. */
  model(): Model | undefined;
}

let codecsWarm = false;

/**
 * protobufjs generates each message type's encoder and checks on first use: 10–20 ms for Envoy's types, in one
 * piece, once per process. Building a one-service snapshot when the first publisher is made does it before
 * anything is served, instead of inside the first real build (5,000 services), where it lengthened the
 * longest stop of the event loop.
 */
function warmCodecs(): void {
  if (codecsWarm) return;
  codecsWarm = true;
  const model = readModel({ services: [{ name: 'warm-up', endpoints: [{ address: '10.0.0.1', port: 8000, zone: 'a' }] }] });
  if (model.ok) runSteps(buildSnapshotSteps(runSteps(translateSteps(model.value))));
}

/** Creates a {@link Publisher} for `group` (default {@link DEFAULT_GROUP}). */
export function createPublisher(options: {
  cache: SnapshotCache;
  log: Logger;
  metrics: Metrics;
  group?: string;
  /** Largest response any client may be sent (default {@link MAX_RESPONSE_BYTES}): larger configurations are refused. */
  maxResponseBytes?: number;
  /** How long a build may hold the event loop at a time (see src/steps.ts). */
  slice?: SliceOptions;
  /** The clock `eventAt` is read against (epoch ms; default `Date.now`). */
  now?: () => number;
}): Publisher {
  warmCodecs();
  const now = options.now ?? Date.now;
  const latency = options.metrics.histogram('inferplane_publish_latency_seconds', 'From the first source event a snapshot carries (Kubernetes event, file change) to its publication', [], LATENCY_BUCKETS);
  const maxResponseBytes = options.maxResponseBytes ?? MAX_RESPONSE_BYTES;
  const group = options.group ?? DEFAULT_GROUP;
  const { cache, log } = options;
  const published = options.metrics.counter('inferplane_snapshots_total', 'Snapshot builds, by result', ['result'], [{ result: 'published' }, { result: 'fast-path' }, { result: 'rejected' }]);
  let lastModel: Model | undefined;
  // Only when the services and their ports are those of the last published model; otherwise the full path.
  function* fastPath(previous: Snapshot, model: Model, changed: ReadonlySet<string>): Steps<Result<Snapshot, string[]> | undefined> {
    if (!lastModel || lastModel.services.length !== model.services.length || lastModel.listener !== model.listener) return undefined;
    const specs: ResourceSpec[] = [];
    for (const [i, s] of model.services.entries()) {
      const before = lastModel.services[i]!;
      if (before.name !== s.name || (before.ports !== s.ports && JSON.stringify(before.ports) !== JSON.stringify(s.ports))) return undefined;
      if (!changed.has(s.name)) {
        if (before !== s) return undefined;
        continue;
      }
      if (before.settings !== s.settings || before.routes !== s.routes) return undefined;
      for (const p of s.ports) specs.push(loadAssignment(s, p.name));
      yield;
    }
    const patched = yield* patchEndpointsSteps(previous, specs, maxResponseBytes);
    return patched.ok ? patched : undefined;
  }
  let zoneGroups = new Set<string>();
  /**
   * Each zone's own view, for services with zone affinity: the default snapshot with their assignments split
   * by priority for that zone (other types shared). A zone without a ready endpoint of such a service has no
   * group of its own, so its clients take the default snapshot; a zone view that cannot be built is dropped the
   * same way, never left stale. After an endpoint-only change (`changed`, the services whose endpoints
   * changed), a zone that had a view gets its previous one with only those services' assignments replaced:
   * re-deriving every affine service for every zone made one endpoint's change cost seconds at 5,000 services.
   */
  function* publishZones(model: Model, base: Snapshot, changed: ReadonlySet<string> | undefined): Steps<void> {
    const affine = model.services.filter((s) => s.settings.zoneAffinity);
    if (affine.length === 0 && zoneGroups.size === 0) return;
    const zones = new Set<string>();
    for (const s of affine) for (const e of s.endpoints) if (e.zone !== '' && e.ready) zones.add(e.zone);
    yield;
    const next = new Set<string>();
    for (const zone of [...zones].sort()) {
      const g = zoneGroup(zone);
      const previous = changed && zoneGroups.has(g) ? cache.get(g) : undefined;
      const services = previous ? model.services.filter((s) => changed!.has(s.name)) : affine;
      // A service without affinity has the default snapshot's assignment in every view.
      const specs = services.flatMap((s) => s.ports.map((p) => loadAssignment(s, p.name, s.settings.zoneAffinity ? zone : undefined)));
      yield;
      const built = yield* patchEndpointsSteps(previous ?? base, specs, maxResponseBytes, previous ? base : cache.get(g));
      if (!built.ok) {
        for (const problem of built.error) log.error('zone view rejected; its clients get the default snapshot', { group: g, problem });
        continue;
      }
      cache.set(g, built.value);
      next.add(g);
    }
    for (const g of zoneGroups) if (!next.has(g)) cache.delete(g);
    zoneGroups = next;
  }
  function* publishSteps(model: Model, endpointsOnly: ReadonlySet<string> | undefined, eventAt: number | undefined): Steps<Result<Snapshot, string[]>> {
    const previous = cache.get(group);
    const fast = previous && endpointsOnly ? yield* fastPath(previous, model, endpointsOnly) : undefined;
    if (fast) published.inc({ result: 'fast-path' });
    const built: Result<Snapshot, string[]> = fast ?? (yield* buildSnapshotSteps(yield* translateSteps(model), previous, maxResponseBytes));
    if (!built.ok) {
      published.inc({ result: 'rejected' });
      for (const problem of built.error) log.error('snapshot rejected; keeping the last good one', { group, problem });
      return err(built.error);
    }
    cache.set(group, built.value);
    yield* publishZones(model, built.value, fast ? endpointsOnly : undefined);
    published.inc({ result: 'published' });
    if (eventAt !== undefined) latency.observe({}, Math.max(0, now() - eventAt) / 1000);
    lastModel = model;
    if (previous?.version !== built.value.version) {
      log.info('snapshot published', { group, version: built.value.version, services: model.services.length, endpoints: model.services.reduce((n, s) => n + s.endpoints.length, 0) });
    }
    return ok(built.value);
  }
  type Waiter = { resolve: (r: Result<Snapshot, string[]>) => void; reject: (e: unknown) => void };
  let next: { model: Model; endpointsOnly: Set<string> | undefined; eventAt: number | undefined; waiters: Waiter[] } | undefined;
  let building = false;
  const drain = async (): Promise<void> => {
    building = true;
    while (next) {
      const job = next;
      next = undefined;
      try {
        const r = await runStepsAsync(publishSteps(job.model, job.endpointsOnly, job.eventAt), options.slice);
        for (const w of job.waiters) w.resolve(r);
      } catch (e) {
        for (const w of job.waiters) w.reject(e);
      }
    }
    building = false;
  };
  return {
    publish(model, endpointsOnly, eventAt) {
      return new Promise((resolve, reject) => {
        if (next) {
          // A full build covers any change; two endpoint-only changes together cover both sets.
          const merged = next.endpointsOnly && endpointsOnly ? new Set([...next.endpointsOnly, ...endpointsOnly]) : undefined;
          // The waiting change was seen first: its time is the one this build answers for.
          next = { model, endpointsOnly: merged, eventAt: next.eventAt ?? eventAt, waiters: [...next.waiters, { resolve, reject }] };
        } else {
          next = { model, endpointsOnly: endpointsOnly && new Set(endpointsOnly), eventAt, waiters: [{ resolve, reject }] };
        }
        if (!building) void drain();
      });
    },
    ready: () => cache.get(group) !== undefined,
    model: () => lastModel,
  };
}
