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

/** The label Envoy's metrics service puts the cluster in when it emits tags as labels. */
export const CLUSTER_LABEL = 'envoy.cluster_name';

/**
 * Extracts `cluster → upstream_rq_active` from one Envoy report, in every form Envoy names it (verified against
 * Envoy itself, test/e2e/envoy-stats.test.ts):
 * - `cluster.<cluster>.upstream_rq_active` (metrics service default names, admin `/stats`);
 * - `cluster.upstream_rq_active` with the label `envoy.cluster_name` (metrics service with
 *   `emit_tags_as_labels`). Tag extraction takes the cluster name up to its first dot and leaves the rest in
 *   the name: `llama-3.1/http` arrives as label `llama-3` on `cluster.1/http.upstream_rq_active`, which is
 *   joined back;
 * - `envoy_cluster_upstream_rq_active` with the label `envoy_cluster_name` (admin `/stats/prometheus`).
 * Values that are not finite, negative or absurd are refused, with a reason per refusal.
 */
export function activeByCluster(gauges: readonly ReportedGauge[]): { active: Map<string, number>; rejected: string[]; rejectedClusters: string[] } {
  const active = new Map<string, number>();
  const rejected: string[] = [];
  const rejectedClusters: string[] = [];
  for (const g of gauges) {
    let cluster: string | undefined;
    const tag = g.labels[CLUSTER_LABEL] ?? g.labels['envoy_cluster_name'];
    if (g.name === `cluster.${ACTIVE_GAUGE}` || g.name === `envoy_cluster_${ACTIVE_GAUGE}`) cluster = tag;
    else if (g.name.startsWith('cluster.') && g.name.endsWith(`.${ACTIVE_GAUGE}`)) {
      const rest = g.name.slice('cluster.'.length, -(ACTIVE_GAUGE.length + 1));
      cluster = tag === undefined ? rest : `${tag}.${rest}`;
    }
    if (cluster === undefined || cluster === '') continue;
    if (!Number.isFinite(g.value) || g.value < 0 || g.value > MAX_PLAUSIBLE_ACTIVE) {
      rejected.push(`${cluster}: ${ACTIVE_GAUGE} ${g.value} is not a plausible in-flight count`);
      rejectedClusters.push(cluster);
      continue;
    }
    active.set(cluster, g.value);
  }
  return { active, rejected, rejectedClusters };
}

/** A reporter left out of a total, and why. */
export interface ExcludedReporter {
  readonly nodeId: string;
  /** Envoys it stands for (more than one for a relay). */
  readonly envoys: number;
  readonly ageMs: number;
  readonly reason: string;
}

/** A fleet total with the reporters left out of it. */
export interface FleetTotal extends FleetSample {
  readonly excluded: readonly ExcludedReporter[];
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

/** More about a report than its values (see {@link FleetStats.record}). */
export interface ReportDetails {
  /** A relay (another inferplane replica) stands for `envoys` Envoys, and its data is as old as `oldestAt`. */
  readonly relayed?: { readonly envoys: number; readonly oldestAt: number };
  /** Clusters whose gauge was refused: they carry their previous value over. */
  readonly keep?: readonly string[];
  /**
   * The flush this report is part of (Envoy's `timestamp_ms`). Envoy with `batch_size` sends one flush as
   * several messages back to back, each holding some of the stats; parts of one flush add up to one report.
   * Absent: the report is a whole flush.
   */
  readonly flush?: number;
}

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
   * id replaces too), unless it is a further part of the same flush (`details.flush`): parts add up, and until a
   * flush has been seen whole (the next one starts), clusters it has not reported yet keep the previous flush's
   * values, so a flush that sends its counters first never reads as an idle Envoy. Only the first part of a
   * flush can be throttled. A relay (another inferplane replica forwarding the sums of its own Envoys) stands
   * for `envoys` Envoys, and its data is as old as its oldest Envoy report. Clusters in `keep` (their gauge was
   * refused) carry their previous value over: a bad gauge must not read as zero requests.
   */
  record(nodeId: string, at: number, active: ReadonlyMap<string, number>, details?: ReportDetails): RecordOutcome;
  /** Forgets a reporter (its stream ended: it reports elsewhere now, or not at all). */
  forget(nodeId: string): void;
  /** Sums over fresh direct reporters (relays excluded, so forwarded sums are never forwarded again). */
  local(now: number): LocalTotals | undefined;
  /**
   * The fleet total for one service at `now`: the sum over fresh reporters of their active requests to the
   * service's clusters (`<service>/<port>`), with how many Envoys reported. A reporter older than `maxAgeMs`
   * (default: the expiry) is left out and listed in `excluded`, so one silent Envoy makes the total partial
   * (fewer Envoys: no scale-down on it) rather than stale for the whole fleet. Undefined when none is fresh.
   */
  sample(service: string, now: number, maxAgeMs?: number): FleetTotal | undefined;
  /** Drops reporters that went silent; returns how many. */
  expire(now: number): number;
  /** Reporters currently known, with the time of their last report and how many Envoys each stands for. */
  reporters(): { nodeId: string; at: number; envoys: number }[];
}

/** Creates an empty, clock-free {@link FleetStats}: every call says what time it is. */
export function createFleetStats(o: FleetStatsOptions = {}): FleetStats {
  const expireMs = o.expireMs ?? 15_000;
  const minIntervalMs = o.minIntervalMs ?? 200;
  interface Entry {
    at: number;
    /** What counts: the current flush over the last whole one. */
    active: ReadonlyMap<string, number>;
    envoys: number;
    relayed: boolean;
    received: number;
    flush: number | undefined;
    /** Values of the current flush so far, and of the last whole flush. */
    current: Map<string, number>;
    whole: ReadonlyMap<string, number>;
    /** A flush whose first part was throttled: its later parts go too. */
    dropped: number | undefined;
  }
  const byNode = new Map<string, Entry>();
  return {
    record(nodeId, at, active, d = {}) {
      const prev = byNode.get(nodeId);
      const { relayed, keep, flush } = d;
      // Parts of one flush arrive back to back; the same stamp much later is a sender that does not change it.
      const samePart = prev !== undefined && flush !== undefined && prev.flush === flush && at - prev.received < minIntervalMs;
      if (prev && flush !== undefined && prev.dropped === flush) return 'throttled';
      if (prev && !samePart && at - prev.received < minIntervalMs) {
        prev.dropped = flush;
        return 'throttled';
      }
      const whole = samePart ? prev.whole : flush !== undefined && prev?.flush !== undefined ? prev.current : new Map<string, number>();
      const current = samePart ? prev.current : new Map<string, number>();
      for (const [c, v] of active) current.set(c, v);
      if (prev && keep) for (const c of keep) if (prev.active.has(c) && !active.has(c)) current.set(c, prev.active.get(c)!);
      // Usually a flush reports every cluster the last one did: then it alone counts, with no merged copy.
      let counted: ReadonlyMap<string, number> = current;
      for (const c of whole.keys()) {
        if (!current.has(c)) {
          counted = new Map([...whole, ...current]);
          break;
        }
      }
      byNode.set(nodeId, { at: Math.min(at, relayed?.oldestAt ?? at), active: counted, envoys: relayed?.envoys ?? 1, relayed: relayed !== undefined, received: samePart ? prev.received : at, flush, current, whole, dropped: undefined });
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
    sample(service, now, maxAgeMs = expireMs) {
      const prefix = `${service}/`;
      let total = 0;
      let envoys = 0;
      let oldest = now;
      const excluded: ExcludedReporter[] = [];
      for (const [nodeId, r] of byNode) {
        if (now - r.at > expireMs) continue;
        if (now - r.at > maxAgeMs) {
          excluded.push({ nodeId, envoys: r.envoys, ageMs: now - r.at, reason: `its latest report is ${((now - r.at) / 1000).toFixed(1)} s old (maxSampleAge ${(maxAgeMs / 1000).toFixed(1)} s)` });
          continue;
        }
        envoys += r.envoys;
        oldest = Math.min(oldest, r.at);
        for (const [cluster, v] of r.active) if (cluster.startsWith(prefix) && !cluster.slice(prefix.length).includes('/')) total += v;
      }
      return envoys === 0 ? undefined : { at: oldest, activeRequests: total, envoys, excluded };
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
    readonly timestamp_ms?: number | string | null;
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
