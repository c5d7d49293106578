import type { FleetSample } from './decide.js';

/** The gauge the scaler reads: requests in flight from one Envoy to one cluster. */
export const ACTIVE_GAUGE = 'upstream_rq_active';

/** A value above this is not a plausible in-flight count for one Envoy and one cluster. */
export const MAX_PLAUSIBLE_ACTIVE = 10_000_000;

/** One gauge as an Envoy reported it (Prometheus client model, flattened). */
export interface ReportedGauge {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/**
 * Extracts `cluster → upstream_rq_active` from one Envoy report. Envoy names the stat
 * `cluster.<cluster>.upstream_rq_active`, or `cluster.upstream_rq_active` with the cluster in the label
 * `envoy_cluster_name` when it emits tags as labels; both are read. Values that are not finite, negative or
 * absurd are refused, with a reason per refusal.
 */
export function activeByCluster(gauges: readonly ReportedGauge[]): { active: Map<string, number>; rejected: string[]; rejectedClusters: string[] } {
  const active = new Map<string, number>();
  const rejected: string[] = [];
  const rejectedClusters: string[] = [];
  for (const g of gauges) {
    let cluster: string | undefined;
    if (g.name === `cluster.${ACTIVE_GAUGE}` || g.name === `envoy_cluster_${ACTIVE_GAUGE}`) cluster = g.labels['envoy_cluster_name'];
    else if (g.name.startsWith('cluster.') && g.name.endsWith(`.${ACTIVE_GAUGE}`)) cluster = g.name.slice('cluster.'.length, -(ACTIVE_GAUGE.length + 1));
    if (cluster === undefined) continue;
    if (!Number.isFinite(g.value) || g.value < 0 || g.value > MAX_PLAUSIBLE_ACTIVE) {
      rejected.push(`${cluster}: ${ACTIVE_GAUGE} ${g.value} is not a plausible in-flight count`);
      rejectedClusters.push(cluster);
      continue;
    }
    active.set(cluster, g.value);
  }
  return { active, rejected, rejectedClusters };
}

/** Options of {@link createFleetStats}. */
export interface FleetStatsOptions {
  /** A reporter silent for longer than this no longer counts (and is forgotten). Default 15 s. */
  readonly expireMs?: number;
  /** Reports from one Envoy closer together than this are dropped (flood protection). Default 200 ms. */
  readonly minIntervalMs?: number;
}

/** What a report did. */
export type RecordOutcome = 'recorded' | 'throttled';

/** The sums of the Envoys reporting directly to this process, as a relay forwards them to the leader. */
export interface LocalTotals {
  readonly active: ReadonlyMap<string, number>;
  readonly envoys: number;
  /** Time of the oldest report summed. */
  readonly oldestAt: number;
}

/** The fleet's in-flight requests, from every Envoy's latest report. */
export interface FleetStats {
  /**
   * Records a report that arrived at `at`, replacing the reporter's previous one (a reconnect under the same node
   * id replaces too). A relay (another inferplane replica forwarding the sums of its own Envoys) stands for
   * `envoys` Envoys, and its data is as old as its oldest Envoy report. Clusters in `keep` (their gauge was
   * refused) carry their previous value over: a bad gauge must not read as zero requests.
   */
  record(nodeId: string, at: number, active: ReadonlyMap<string, number>, relayed?: { envoys: number; oldestAt: number }, keep?: readonly string[]): RecordOutcome;
  /** Forgets a reporter (its stream ended: it reports elsewhere now, or not at all). */
  forget(nodeId: string): void;
  /** Sums over fresh direct reporters (relays excluded, so forwarded sums are never forwarded again). */
  local(now: number): LocalTotals | undefined;
  /**
   * The fleet total for one service at `now`: the sum over fresh reporters of their active requests to the
   * service's clusters (`<service>/<port>`), with how many Envoys reported. Undefined when none is fresh.
   */
  sample(service: string, now: number): FleetSample | undefined;
  /** Drops reporters that went silent; returns how many. */
  expire(now: number): number;
  /** Reporters currently known, with the time of their last report and how many Envoys each stands for. */
  reporters(): { nodeId: string; at: number; envoys: number }[];
}

/** Creates an empty, clock-free {@link FleetStats}: every call says what time it is. */
export function createFleetStats(o: FleetStatsOptions = {}): FleetStats {
  const expireMs = o.expireMs ?? 15_000;
  const minIntervalMs = o.minIntervalMs ?? 200;
  const byNode = new Map<string, { at: number; active: ReadonlyMap<string, number>; envoys: number; relayed: boolean; received: number }>();
  return {
    record(nodeId, at, active, relayed, keep) {
      const prev = byNode.get(nodeId);
      if (prev && at - prev.received < minIntervalMs) return 'throttled';
      if (prev && keep && keep.length > 0) {
        const merged = new Map(active);
        for (const c of keep) if (prev.active.has(c) && !merged.has(c)) merged.set(c, prev.active.get(c)!);
        active = merged;
      }
      byNode.set(nodeId, { at: Math.min(at, relayed?.oldestAt ?? at), active, envoys: relayed?.envoys ?? 1, relayed: relayed !== undefined, received: at });
      return 'recorded';
    },
    forget(nodeId) {
      byNode.delete(nodeId);
    },
    local(now) {
      const active = new Map<string, number>();
      let envoys = 0;
      let oldestAt = now;
      for (const r of byNode.values()) {
        if (r.relayed || now - r.at > expireMs) continue;
        envoys++;
        oldestAt = Math.min(oldestAt, r.at);
        for (const [cluster, v] of r.active) active.set(cluster, (active.get(cluster) ?? 0) + v);
      }
      return envoys === 0 ? undefined : { active, envoys, oldestAt };
    },
    sample(service, now) {
      const prefix = `${service}/`;
      let total = 0;
      let envoys = 0;
      let oldest = now;
      for (const r of byNode.values()) {
        if (now - r.at > expireMs) continue;
        envoys += r.envoys;
        oldest = Math.min(oldest, r.at);
        for (const [cluster, v] of r.active) if (cluster.startsWith(prefix) && !cluster.slice(prefix.length).includes('/')) total += v;
      }
      return envoys === 0 ? undefined : { at: oldest, activeRequests: total, envoys };
    },
    expire(now) {
      let n = 0;
      for (const [id, r] of byNode) {
        if (now - r.at > expireMs) {
          byNode.delete(id);
          n++;
        }
      }
      return n;
    },
    reporters: () => [...byNode].map(([nodeId, r]) => ({ nodeId, at: r.at, envoys: r.envoys })).sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1)),
  };
}

/** A decoded Prometheus MetricFamily (io.prometheus.client), as Envoy's metrics service sends it. */
export interface MetricFamilyMessage {
  readonly name?: string | null;
  readonly type?: string | number | null;
  readonly metric?: readonly {
    readonly label?: readonly { readonly name?: string | null; readonly value?: string | null }[] | null;
    readonly gauge?: { readonly value?: number | null } | null;
  }[] | null;
}

/** The gauges in a batch of metric families (other metric types are skipped). */
export function gaugesOf(families: readonly MetricFamilyMessage[]): ReportedGauge[] {
  const out: ReportedGauge[] = [];
  for (const f of families) {
    if (f.type !== 'GAUGE' && f.type !== 1) continue;
    for (const m of f.metric ?? []) {
      if (m.gauge?.value === undefined || m.gauge.value === null) continue;
      out.push({ name: f.name ?? '', labels: Object.fromEntries((m.label ?? []).map((l) => [l.name ?? '', l.value ?? ''])), value: m.gauge.value });
    }
  }
  return out;
}
