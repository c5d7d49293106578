import type { Model } from '../model/model.js';
import type { Logger } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import { err, ok, type Result } from '../result.js';
import { translate } from '../translate/translate.js';
import { DEFAULT_GROUP, type SnapshotCache } from './cache.js';
import { buildSnapshot, type Snapshot } from './snapshot.js';

/** Turns models into snapshots and sets them on the cache for one group. */
export interface Publisher {
  /**
   * Translates and publishes a model. On failure (an inconsistent or unencodable result) nothing changes:
   * the previous snapshot keeps serving and the problems are returned and logged.
   */
  publish(model: Model): Result<Snapshot, string[]>;
  /** True once a first complete snapshot has been published. */
  ready(): boolean;
}

/** Creates a {@link Publisher} for `group` (default {@link DEFAULT_GROUP}). */
export function createPublisher(options: { cache: SnapshotCache; log: Logger; metrics: Metrics; group?: string }): Publisher {
  const group = options.group ?? DEFAULT_GROUP;
  const { cache, log } = options;
  const published = options.metrics.counter('inferplane_snapshots_total', 'Snapshot builds, by result');
  return {
    publish(model) {
      const built = buildSnapshot(translate(model), cache.get(group));
      if (!built.ok) {
        published.inc({ result: 'rejected' });
        for (const problem of built.error) log.error('snapshot rejected; keeping the last good one', { group, problem });
        return err(built.error);
      }
      const previous = cache.get(group)?.version;
      cache.set(group, built.value);
      published.inc({ result: 'published' });
      if (previous !== built.value.version) {
        log.info('snapshot published', { group, version: built.value.version, services: model.services.length, endpoints: model.services.reduce((n, s) => n + s.endpoints.length, 0) });
      }
      return ok(built.value);
    },
    ready: () => cache.get(group) !== undefined,
  };
}
