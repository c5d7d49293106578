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
  /** `node.locality.zone`, when the node reports one. */
  readonly zone?: string;
}

/** The node metadata key by which an Envoy offers its admin endpoint for stats scraping. */
export const STATS_URL_METADATA = 'inferplane.io/stats-url';

/** The group every node falls into unless a snapshot is set for a more specific one. */
export const DEFAULT_GROUP = 'default';

/**
 * The group of the nodes in one zone: a zone's own view (its nodes' own endpoints first, for services with zone
 * affinity) when one is set, the {@link DEFAULT_GROUP}'s snapshot until then.
 */
export function zoneGroup(zone: string): string {
  return `${ZONE_PREFIX}${zone}`;
}

const ZONE_PREFIX = 'zone/';

/**
 * Maps a node to the snapshot group it is served from. `hasGroup` tells which groups have a snapshot.
 * The default, {@link groupByCluster}, serves a node from the group named after its `node.cluster` when one
 * has been set, and from {@link DEFAULT_GROUP} otherwise, so a single-group deployment needs no setup and a
 * fleet can later be split by Envoy cluster without restarting anything.
 */
export type NodeGrouper = (node: NodeInfo, hasGroup: (group: string) => boolean) => string;

/** See {@link NodeGrouper}; a node in no cluster group but in a zone is in its {@link zoneGroup}. */
export const groupByCluster: NodeGrouper = (node, hasGroup) =>
  node.cluster !== '' && hasGroup(node.cluster) ? node.cluster : node.zone ? zoneGroup(node.zone) : DEFAULT_GROUP;

/**
 * Holds the current snapshot per group and tells watchers when it changes. The stream code owns nonces,
 * ACKs and subscriptions; the cache owns snapshots. Watchers are called synchronously from `set` and must only
 * note the change and schedule their work, so one slow stream never holds up the others.
 */
export interface SnapshotCache {
  /**
   * Replaces a group's snapshot (no-op when the version is unchanged) and notifies that group's watchers (for
   * the default group, also those of zone groups without a snapshot of their own).
   */
  set(group: string, snapshot: Snapshot): void;
  /** The group's snapshot; for a zone group without one, the default group's. */
  get(group: string): Snapshot | undefined;
  /** Drops a group's own snapshot; a zone group's watchers move to the default group's. */
  delete(group: string): void;
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
  const get = (group: string) => snapshots.get(group) ?? (group.startsWith(ZONE_PREFIX) ? snapshots.get(DEFAULT_GROUP) : undefined);
  const notify = (group: string, snapshot: Snapshot) => {
    for (const fn of [...(watchers.get(group) ?? [])]) fn(snapshot);
  };
  return {
    set(group, snapshot) {
      if (snapshots.get(group)?.version === snapshot.version) return;
      const before = get(group);
      snapshots.set(group, snapshot);
      setAt.set(snapshot, performance.now());
      if (before?.version !== snapshot.version) notify(group, snapshot);
      if (group === DEFAULT_GROUP) {
        for (const g of watchers.keys()) if (g.startsWith(ZONE_PREFIX) && !snapshots.has(g)) notify(g, snapshot);
      }
    },
    get,
    delete(group) {
      const before = snapshots.get(group);
      if (!before || !snapshots.delete(group)) return;
      const now = get(group);
      if (now && now.version !== before.version) notify(group, now);
    },
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
