import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../../observability/log.js';
import { backoffDelay, type Timers } from './timers.js';

/** Options of {@link createSupervisedInformer}. */
export interface SupervisedInformerOptions<T extends KubernetesObject> {
  readonly kubeConfig: KubeConfig;
  /** API path watched, e.g. `/api/v1/services` or `/api/v1/namespaces/ml/services`. */
  readonly path: string;
  readonly list: () => Promise<KubernetesListObject<T>>;
  readonly labelSelector?: string;
  /** e.g. `metadata.name=scaling-policy`: the list function must apply the same one. */
  readonly fieldSelector?: string;
  /** For logs. */
  readonly name: string;
  readonly log: Logger;
  readonly timers: Timers;
  /** Called after any add, update or delete, with the object (the cache already reflects it). */
  readonly onChange: (obj: T) => void;
  /** Called once, after the first list's objects are in the cache. */
  readonly onSynced?: () => void;
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /**
   * Watches are restarted (resuming from the last resourceVersion, no relist) after this long, so a watch that
   * silently stopped delivering cannot go unnoticed for longer. Default 5 minutes.
   */
  readonly maxWatchMs?: number;
}

/**
 * Objects per page when listing. A list of thousands of EndpointSlices is tens of megabytes of JSON that the
 * client parses and converts in one go; in pages, other work (xDS streams, stats) runs in between.
 */
export const LIST_PAGE_SIZE = 100;

/**
 * Lists every page (`limit`, then each `continue` token) and returns them as one list carrying the snapshot's
 * resourceVersion, which is the same on every page, so a watch resumes from the right point. A token that
 * expires mid-way (410) fails the list, and the informer starts over.
 */
export async function listAllPages<T extends KubernetesObject>(page: (cont: string | undefined) => Promise<KubernetesListObject<T>>): Promise<KubernetesListObject<T>> {
  const first = await page(undefined);
  const items = [...first.items];
  let last = first;
  while (last.metadata?._continue) {
    last = await page(last.metadata._continue);
    for (const item of last.items) items.push(item);
  }
  return { ...first, metadata: { ...first.metadata, _continue: undefined, remainingItemCount: undefined, resourceVersion: last.metadata?.resourceVersion ?? first.metadata?.resourceVersion }, items } as KubernetesListObject<T>;
}

/** An informer that keeps itself running. */
export interface SupervisedInformer<T extends KubernetesObject> {
  start(): void;
  stop(): Promise<void>;
  /** True once a first list has completed: before that there is no truth to serve. */
  synced(): boolean;
  list(): readonly T[];
}

/**
 * Wraps a @kubernetes/client-node informer. client-node relists by itself on 410 Gone (emitting deletes only
 * for objects that really vanished), but stops for good on any other error and reconnects with no delay;
 * this restarts it with capped exponential backoff instead, and keeps the cache (so the last known objects
 * keep being served) while it is down.
 */
export function createSupervisedInformer<T extends KubernetesObject>(o: SupervisedInformerOptions<T>): SupervisedInformer<T> {
  let synced = false;
  let attempt = 0;
  let stopped = true;
  let restartTimer: unknown;
  let ageTimer: unknown;
  let healthyTimer: unknown;
  let restarting = false;
  const informer = new ListWatch<T>(o.path, new Watch(o.kubeConfig), async () => {
    const list = await o.list();
    attempt = 0;
    if (!synced) {
      synced = true;
      // The informer adds the listed objects right after this returns, before any other task runs.
      setImmediate(() => o.onSynced?.());
    }
    return list;
  }, false, o.labelSelector, o.fieldSelector);
  for (const verb of ['add', 'update', 'delete'] as const) informer.on(verb, (obj: T) => o.onChange(obj));
  informer.on('error', (e?: unknown) => {
    if (stopped || restarting) return;
    o.timers.clearTimeout(healthyTimer);
    const delay = backoffDelay(attempt++, o.backoffInitialMs ?? 500, o.backoffMaxMs ?? 30_000);
    o.log.warn('informer failed; keeping the last known objects and restarting', { informer: o.name, error: describe(e), retryInMs: delay });
    o.timers.clearTimeout(restartTimer);
    restartTimer = o.timers.setTimeout(run, delay);
  });
  const armAge = () => {
    o.timers.clearTimeout(ageTimer);
    ageTimer = o.timers.setTimeout(() => {
      if (stopped) return;
      restarting = true;
      void informer.stop().then(() => {
        restarting = false;
        run();
      });
    }, o.maxWatchMs ?? 300_000);
  };
  function run(): void {
    if (stopped) return;
    armAge();
    // A restart that resumes a watch (no list) proves itself by staying up: then the backoff starts over.
    o.timers.clearTimeout(healthyTimer);
    healthyTimer = o.timers.setTimeout(() => (attempt = 0), o.backoffMaxMs ?? 30_000);
    informer.start().catch((e: unknown) => o.log.error('informer start failed', { informer: o.name, error: describe(e) }));
  }
  return {
    start() {
      stopped = false;
      run();
    },
    async stop() {
      stopped = true;
      o.timers.clearTimeout(restartTimer);
      o.timers.clearTimeout(ageTimer);
      o.timers.clearTimeout(healthyTimer);
      await informer.stop();
    },
    synced: () => synced,
    list: () => informer.list(),
  };
}

function describe(e: unknown): string {
  if (e instanceof Error) return `${e.message}${(e as { statusCode?: number }).statusCode ? ` (HTTP ${(e as { statusCode?: number }).statusCode})` : ''}`;
  return String(e);
}
