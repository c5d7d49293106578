import type { Model } from '../model/model.js';
import type { Logger } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import { err, ok, type Result } from '../result.js';
import { translate } from '../translate/translate.js';
import { DEFAULT_GROUP, type SnapshotCache } from './cache.js';
import { buildSnapshot, MAX_RESPONSE_BYTES, patchEndpoints, type Snapshot } from './snapshot.js';
import { loadAssignment } from '../translate/endpoint.js';
import type { ResourceSpec } from '../translate/common.js';

/** Turns models into snapshots and sets them on the cache for one group. */
export interface Publisher {
  /**
   * Translates and publishes a model. On failure (an inconsistent or unencodable result) nothing changes:
   * the previous snapshot keeps serving and the problems are returned and logged. With `endpointsOnly`, the
   * caller promises that only the endpoints of those services changed: their ClusterLoadAssignments are
   * rebuilt and nothing else is translated (CDS, LDS and RDS keep their objects and versions).
   */
  publish(model: Model, endpointsOnly?: ReadonlySet<string>): Result<Snapshot, string[]>;
  /** True once a first complete snapshot has been published. */
  ready(): boolean;
  /** The model of the snapshot being served; undefined before the first. */
  model(): Model | undefined;
}

/** Creates a {@link Publisher} for `group` (default {@link DEFAULT_GROUP}). */
export function createPublisher(options: {
  cache: SnapshotCache;
  log: Logger;
  metrics: Metrics;
  group?: string;
  /** Largest response any client may be sent (default {@link MAX_RESPONSE_BYTES}): larger configurations are refused. */
  maxResponseBytes?: number;
}): Publisher {
  const maxResponseBytes = options.maxResponseBytes ?? MAX_RESPONSE_BYTES;
  const group = options.group ?? DEFAULT_GROUP;
  const { cache, log } = options;
  const published = options.metrics.counter('inferplane_snapshots_total', 'Snapshot builds, by result');
  let lastModel: Model | undefined;
  // Only when the services and their ports are those of the last published model; otherwise the full path.
  const fastPath = (previous: Snapshot, model: Model, changed: ReadonlySet<string>): Result<Snapshot, string[]> | undefined => {
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
    }
    const patched = patchEndpoints(previous, specs, maxResponseBytes);
    return patched.ok ? patched : undefined;
  };
  return {
    publish(model, endpointsOnly) {
      const previous = cache.get(group);
      const fast = previous && endpointsOnly ? fastPath(previous, model, endpointsOnly) : undefined;
      if (fast) published.inc({ result: 'fast-path' });
      const built: Result<Snapshot, string[]> = fast ?? buildSnapshot(translate(model), previous, maxResponseBytes);
      if (!built.ok) {
        published.inc({ result: 'rejected' });
        for (const problem of built.error) log.error('snapshot rejected; keeping the last good one', { group, problem });
        return err(built.error);
      }
      cache.set(group, built.value);
      published.inc({ result: 'published' });
      lastModel = model;
      if (previous?.version !== built.value.version) {
        log.info('snapshot published', { group, version: built.value.version, services: model.services.length, endpoints: model.services.reduce((n, s) => n + s.endpoints.length, 0) });
      }
      return ok(built.value);
    },
    ready: () => cache.get(group) !== undefined,
    model: () => lastModel,
  };
}
