import type { Snapshot } from './snapshot.js';

/** What the server knows of a node: from the `node` field of the first request on a stream. */
export interface NodeInfo {
  readonly id: string;
  readonly cluster: string;
  /** e.g. `envoy` or `gRPC Node`, with its version. */
  readonly userAgent: string;
  /**
   * Where the node's stats can be scraped (node metadata {@link STATS_URL_METADATA}, e.g.
   * `http://10.0.0.5:9901`), for fleets that cannot push stats.
   */
  readonly statsUrl?: string;
}

/** The node metadata key by which an Envoy offers its admin endpoint for stats scraping. */
export const STATS_URL_METADATA = 'inferplane.io/stats-url';

/** The group every node falls into unless a snapshot is set for a more specific one. */
export const DEFAULT_GROUP = 'default';

/**
 * Maps a node to the snapshot group it is served from. `hasGroup` tells which groups have a snapshot.
 * The default, {@link groupByCluster}, serves a node from the group named after its `node.cluster` when one
 * has been set, and from {@link DEFAULT_GROUP} otherwise, so a single-group deployment needs no setup and a
 * fleet can later be split by Envoy cluster without restarting anything.
 */
export type NodeGrouper = (node: NodeInfo, hasGroup: (group: string) => boolean) => string;

/** See {@link NodeGrouper}. */
export const groupByCluster: NodeGrouper = (node, hasGroup) =>
  node.cluster !== '' && hasGroup(node.cluster) ? node.cluster : DEFAULT_GROUP;

/**
 * Holds the current snapshot per group and tells watchers when it changes. The stream code owns nonces,
 * ACKs and subscriptions; the cache owns snapshots. Watchers are called synchronously from `set` and must only
 * note the change and schedule their work, so one slow stream never holds up the others.
 */
export interface SnapshotCache {
  /** Replaces a group's snapshot (no-op when the version is unchanged) and notifies that group's watchers. */
  set(group: string, snapshot: Snapshot): void;
  get(group: string): Snapshot | undefined;
  /** When `snapshot` was set (`performance.now()` ms), while it is held; for the push-latency histogram. */
  publishedAt(snapshot: Snapshot): number | undefined;
  groupOf(node: NodeInfo): string;
  /** Calls `fn` on every later change of `group`; returns the function that cancels the watch. */
  watch(group: string, fn: (snapshot: Snapshot) => void): () => void;
  /** Groups with a snapshot, sorted. */
  groups(): string[];
}

/** Creates an in-memory {@link SnapshotCache}. */
export function createSnapshotCache(options: { grouper?: NodeGrouper } = {}): SnapshotCache {
  const grouper = options.grouper ?? groupByCluster;
  const snapshots = new Map<string, Snapshot>();
  const watchers = new Map<string, Set<(s: Snapshot) => void>>();
  const hasGroup = (g: string) => snapshots.has(g);
  const setAt = new WeakMap<Snapshot, number>();
  return {
    set(group, snapshot) {
      if (snapshots.get(group)?.version === snapshot.version) return;
      snapshots.set(group, snapshot);
      setAt.set(snapshot, performance.now());
      for (const fn of [...(watchers.get(group) ?? [])]) fn(snapshot);
    },
    get: (group) => snapshots.get(group),
    publishedAt: (snapshot) => setAt.get(snapshot),
    groupOf: (node) => grouper(node, hasGroup),
    watch(group, fn) {
      let set = watchers.get(group);
      if (!set) watchers.set(group, (set = new Set()));
      set.add(fn);
      return () => {
        set.delete(fn);
        if (set.size === 0) watchers.delete(group);
      };
    },
    groups: () => [...snapshots.keys()].sort(),
  };
}
