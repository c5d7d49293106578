/**
 * The scaler's decision: a pure, deterministic function of the fleet's recent active-request totals, the
 * Deployment's replica counts, the policy and the time. No I/O, no clock of its own: the scaler calls it every
 * tick, and a what-if simulator can replay traces through it.
 *
 * Shape (after Knative's KPA and Kubernetes' HPA, see DESIGN.md §6):
 * - demand = the higher of the mean fleet concurrency over a stable window (default 60 s) and over a short
 *   panic window (6 s): rises are seen within seconds, falls only as the long window forgets them. When the
 *   panic-window demand would need `panicThreshold`× the ready pods, the scaler panics: no scale-down until a
 *   full stable window has passed without panic;
 * - wanted pods = ceil(demand / target concurrency per pod) of the current mode;
 * - up: at once, to at most the ready pods plus max(`maxUpPods`, `maxUpPercent`% of them); pods that exist but
 *   are not ready yet (a GPU server loads for minutes) count as capacity on the way and have spent the step,
 *   so a surge is answered once;
 * - down: only when every recommendation over `scaleDownWindowMs` is lower, to the highest of them, by at most
 *   `maxDownPercent`% per decision. What a panic asked for is left out once it is over (it counted the queue
 *   that built while pods loaded), unless it began within a window of the panic before it;
 * - within `tolerance` above or `scaleDownTolerance` below the base: hold (no flapping under steady load);
 * - missing, stale or partial stats: hold, and say so (never read silence as idleness); so does a scale-down
 *   while fewer Envoys report than did within the scale-down window (they may have gone silent, not idle), and
 *   any scale-down until a whole window of good data follows a gap (Envoys reconnect one at a time);
 * - for `externalCoolOffMs` after someone else changed the replica count: hold what they set, bounds included;
 * - modes (playbooks) normal / surge / emergency carry their own targets and rates, chosen by demand
 *   pressure on the ready pods (entered at once, left only after a stable window without that pressure), or
 *   forced by the operator.
 */

import type { Mode } from '../model/model.js';

/** The fleet's total in-flight requests at one moment, summed over every reporting Envoy. */
export interface FleetSample {
  readonly at: number;
  readonly activeRequests: number;
  /** How many Envoys contributed to the sum. */
  readonly envoys: number;
}

/** The Deployment's replicas as the API server reports them. */
export interface ReplicaCounts {
  /** spec.replicas: what was last asked for. */
  readonly desired: number;
  /** Pods ready to serve. */
  readonly ready: number;
}

/** Targets and rates of one mode. */
export interface ModeSettings {
  /** In-flight requests per pod to aim for (a fraction of the benchmarked sustainable per-pod concurrency). */
  readonly targetPerPod: number;
  readonly maxUpPods: number;
  readonly maxUpPercent: number;
  readonly maxDownPercent: number;
}

/** Mode names, calmest first (the data plane's playbooks follow the same modes: see model.ts). */
export const MODES = ['normal', 'surge', 'emergency'] as const satisfies readonly Mode[];
export type { Mode };

/** The scaling policy of one service. */
export interface ScalingPolicy {
  readonly minReplicas: number;
  readonly maxReplicas: number;
  readonly stableWindowMs: number;
  readonly panicWindowMs: number;
  /** Panic when panic-window demand needs this many times the ready pods. */
  readonly panicThreshold: number;
  /** Relative rise of the wanted count over the current one below which the scaler holds. */
  readonly tolerance: number;
  /**
   * Relative fall below which the scaler holds. Narrower than `tolerance`: a scale-down is already smoothed by
   * the window (the highest recommendation over it), and a wide band here only keeps surplus pods.
   */
  readonly scaleDownTolerance: number;
  readonly scaleDownWindowMs: number;
  /** A sample older than this (at decision time) is stale. */
  readonly maxSampleAgeMs: number;
  /** Fewer reporting Envoys than this means the total is partial. */
  readonly minEnvoys: number;
  readonly modes: Readonly<Record<Mode, ModeSettings>>;
  /** Panic-window demand over ready capacity (at the normal target) that enters surge / emergency. */
  readonly modeThresholds: { readonly surge: number; readonly emergency: number };
  /** Operator override of the mode; null lets thresholds decide. */
  readonly forcedMode: Mode | null;
  /** After someone else changes the replica count, the scaler holds it for this long (never fights a human). */
  readonly externalCoolOffMs: number;
  /**
   * Optional second signal, off (null) by default: the model servers' own queues. When the pods report at
   * least `waitingPerPod` requests waiting per ready pod, or a KV-cache usage of at least `kvCacheUsage`
   * (0–1), the scaler adds a step of pods even if the in-flight count is within target, and never scales down.
   */
  readonly queueSignal: { readonly waitingPerPod: number | null; readonly kvCacheUsage: number | null } | null;
  /**
   * Before lowering replicas, set each pod's `controller.kubernetes.io/pod-deletion-cost` to the requests in
   * flight on it, so the ReplicaSet removes the idlest pods (on by default; applied by the scaler, not here).
   */
  readonly scaleDownIdlestFirst: boolean;
}

/** What the pods' own metrics say (vLLM's `num_requests_waiting`, summed; `kv_cache_usage_perc`, averaged). */
export interface QueueReading {
  readonly at: number;
  readonly waiting: number;
  /** 0–1; null when no pod reports it. */
  readonly kvCacheUsage: number | null;
  /** Pods that answered. */
  readonly pods: number;
}

/**
 * Defaults for Llama-3.1-8B in FP8 on one H100 at ~50 in / ~50 out tokens (the engine model's preset, BENCHMARKS.md
 * "The engine model"): 98 in flight per pod, where a pod serves ~91% of its full throughput.
 */
export const DEFAULT_POLICY: ScalingPolicy = {
  minReplicas: 1,
  maxReplicas: 1000,
  stableWindowMs: 60_000,
  panicWindowMs: 6_000,
  panicThreshold: 2,
  // Narrow, because the target sits close to the pod's limit: a 10% band would let pods run past it before a
  // step (on `inferplane simulate`'s reference day without bursts, they did at a target of 100 and then panicked).
  tolerance: 0.03,
  scaleDownTolerance: 0.02,
  scaleDownWindowMs: 180_000,
  maxSampleAgeMs: 10_000,
  minEnvoys: 1,
  // Surge and emergency ask for bigger steps and keep more headroom, and never scale down. The target sits below
  // the batch where an H100 running Llama-3.1-8B in FP8 reaches its full throughput at ~50 in / ~50 out (~615
  // requests/s at ~108 in flight: beyond it every step is compute-bound and more in flight only waits, so the
  // in-flight count stops telling load from queue; BENCHMARKS.md, "The engine model"). At 98 a pod serves ~91%
  // of that; the reference day's frontier of targets and its cost are in BENCHMARKS.md, "What-if simulation".
  modes: {
    normal: { targetPerPod: 98, maxUpPods: 4, maxUpPercent: 100, maxDownPercent: 10 },
    surge: { targetPerPod: 98, maxUpPods: 20, maxUpPercent: 200, maxDownPercent: 0 },
    emergency: { targetPerPod: 86, maxUpPods: 100, maxUpPercent: 1000, maxDownPercent: 0 },
  },
  modeThresholds: { surge: 1.5, emergency: 3 },
  forcedMode: null,
  externalCoolOffMs: 600_000,
  queueSignal: null,
  scaleDownIdlestFirst: true,
};

/** What a decision carries to the next one (returned by {@link decide}, passed back in). */
export interface DecisionState {
  readonly mode: Mode;
  /** Until when the mode holds even if the pressure that chose it has eased. */
  readonly modeUntil: number;
  /** Until when the scaler stays in panic. */
  readonly panicUntil: number;
  /** Whether the current (or last) panic began within a scale-down window of the one before it. */
  readonly panicRecurs: boolean;
  /**
   * Recent recommendations, for the scale-down window, with how many Envoys reported for each; `backlog` marks
   * those made in a panic that stands alone (see {@link decide}), which size the fleet for a queue, not for demand.
   */
  readonly recommendations: readonly { readonly at: number; readonly replicas: number; readonly envoys: number; readonly backlog?: boolean }[];
  /** When this run of decisions began: no scale-down before a full window of evidence. */
  readonly since: number;
}

/** Why a decision came out as it did: stable identifiers, for metrics and logs. */
export type Reason =
  | 'no-data' | 'stale-data' | 'partial-data' | 'below-min' | 'above-max' | 'scale-up' | 'panic-scale-up'
  | 'capacity-on-the-way' | 'within-tolerance' | 'panic-no-scale-down' | 'scale-down-stabilizing'
  | 'scale-down' | 'at-max' | 'at-min' | 'external-change' | 'fewer-reporters' | 'queue-pressure';

/** One decision, with everything it was based on. */
export interface Decision {
  readonly replicas: number;
  readonly action: 'scale-up' | 'scale-down' | 'hold';
  readonly reason: Reason;
  readonly mode: Mode;
  readonly panic: boolean;
  readonly inputs: {
    readonly now: number;
    readonly desired: number;
    readonly ready: number;
    readonly stableDemand: number | null;
    readonly panicDemand: number | null;
    readonly targetPerPod: number;
    readonly wanted: number | null;
    readonly samples: number;
    readonly latestAgeMs: number | null;
    readonly envoys: number | null;
    /** The queue signal's reading, when the policy has one and it is fresh. */
    readonly queueWaiting: number | null;
    readonly kvCacheUsage: number | null;
  };
  readonly state: DecisionState;
}

/** Everything {@link decide} looks at. */
export interface DecideInput {
  /** Fleet samples, oldest first; older than the stable window are ignored. */
  readonly history: readonly FleetSample[];
  readonly replicas: ReplicaCounts;
  readonly policy: ScalingPolicy;
  readonly now: number;
  /** The previous decision's state; omitted on the first decision. */
  readonly state?: DecisionState;
  /** When the replica count was last changed by someone other than this scaler, if ever. */
  readonly externalChangeAt?: number;
  /** The pods' queues, for a policy with a `queueSignal`; a reading older than `maxSampleAgeMs` is ignored. */
  readonly queue?: QueueReading;
}

/** The most pods one decision may reach: the ready ones plus the mode's step, measured from them. */
function upCap(ready: number, m: ModeSettings): number {
  const serving = Math.max(1, ready);
  return serving + Math.max(m.maxUpPods, Math.ceil((serving * m.maxUpPercent) / 100));
}

function mean(samples: readonly FleetSample[]): number | null {
  return samples.length === 0 ? null : samples.reduce((n, s) => n + s.activeRequests, 0) / samples.length;
}

const clamp = (n: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, n));

/** Decides the replica count. Pure: the same input always gives the same decision. */
export function decide(input: DecideInput): Decision {
  const d = decideFreely(input);
  const coolingOff = input.externalChangeAt !== undefined && input.now < input.externalChangeAt + input.policy.externalCoolOffMs;
  // The evidence keeps accumulating (state), but the count someone chose stands until the cool-off ends.
  return coolingOff && d.replicas !== input.replicas.desired ? { ...d, replicas: input.replicas.desired, action: 'hold', reason: 'external-change' } : d;
}

function decideFreely(input: DecideInput): Decision {
  const { policy: p, now, replicas } = input;
  const prev: DecisionState = input.state ?? { mode: 'normal', modeUntil: -Infinity, panicUntil: -Infinity, panicRecurs: false, recommendations: [], since: now };
  const window = input.history.filter((s) => s.at <= now && s.at > now - p.stableWindowMs);
  const latest = window[window.length - 1];
  const stableDemand = mean(window);
  const panicDemand = mean(window.filter((s) => s.at > now - p.panicWindowMs));
  const base = replicas.desired;
  const q = p.queueSignal && input.queue && now - input.queue.at <= p.maxSampleAgeMs && input.queue.pods > 0 ? input.queue : undefined;
  const inputs = (mode: Mode, wanted: number | null) => ({
    now, desired: base, ready: replicas.ready, stableDemand, panicDemand, targetPerPod: p.modes[mode].targetPerPod, wanted,
    samples: window.length, latestAgeMs: latest ? now - latest.at : null, envoys: latest ? latest.envoys : null,
    queueWaiting: q ? q.waiting : null, kvCacheUsage: q ? q.kvCacheUsage : null,
  });
  const decision = (replicasOut: number, reason: Reason, mode: Mode, panic: boolean, wanted: number | null, state: DecisionState): Decision => ({
    replicas: replicasOut,
    action: replicasOut > base ? 'scale-up' : replicasOut < base ? 'scale-down' : 'hold',
    reason, mode, panic, inputs: inputs(mode, wanted), state,
  });

  // Bad data never moves the fleet except into the policy's bounds.
  const dataProblem: Reason | null = !latest ? 'no-data' : now - latest.at > p.maxSampleAgeMs ? 'stale-data' : latest.envoys < p.minEnvoys ? 'partial-data' : null;
  if (dataProblem) {
    const bounded = clamp(base, p.minReplicas, p.maxReplicas);
    const reason = bounded > base ? 'below-min' : bounded < base ? 'above-max' : dataProblem;
    // A gap breaks the run of evidence: after it, Envoys come back one at a time, and until a whole scale-down
    // window has seen them return, a low total may be a partial fleet (the recommendations from before the gap
    // may have aged out of the window, leaving nothing to compare the returning count with).
    return decision(bounded, reason, prev.mode, false, null, { ...prev, since: now });
  }

  const normalTarget = p.modes.normal.targetPerPod;
  const readyCapacity = Math.max(1, replicas.ready) * normalTarget;
  const pressure = panicDemand! / readyCapacity;
  const panicking = panicDemand! / normalTarget >= p.panicThreshold * Math.max(1, replicas.ready) || now < prev.panicUntil;
  const panicUntil = panicDemand! / normalTarget >= p.panicThreshold * Math.max(1, replicas.ready) ? now + p.stableWindowMs : prev.panicUntil;
  // What one panic asks for while pods load counts the requests queued at the ready pods as in flight: it sizes
  // the fleet for a backlog the new pods drain. Panic forbids scale-down until a stable window after it, and
  // by then the stable mean holds no sample from it, so its asks need not hold the fleet for a whole
  // scale-down window too (on `inferplane simulate`'s reference day they kept 918 pods for 5 minutes where 540
  // served the burst). A panic that begins within a window of the last one shows a pattern, not a backlog:
  // its asks count, so a train of spikes holds the fleet instead of shedding it between spikes.
  const panicRecurs = panicking && now >= prev.panicUntil ? now - prev.panicUntil <= p.scaleDownWindowMs : prev.panicRecurs;

  // Modes rise at once and fall back only after a stable window without their pressure.
  const byPressure: Mode = pressure >= p.modeThresholds.emergency ? 'emergency' : pressure >= p.modeThresholds.surge ? 'surge' : 'normal';
  const rising = MODES.indexOf(byPressure) >= MODES.indexOf(prev.mode);
  const mode: Mode = p.forcedMode ?? (rising || now >= prev.modeUntil ? byPressure : prev.mode);
  const modeUntil = byPressure === mode && byPressure !== 'normal' ? now + p.stableWindowMs : prev.modeUntil;
  const m = p.modes[mode];
  const demand = Math.max(stableDemand!, panicDemand!);
  const unbounded = Math.ceil(demand / m.targetPerPod);
  const wanted = clamp(unbounded, p.minReplicas, p.maxReplicas);
  const recommendations = [...prev.recommendations.filter((r) => r.at >= now - p.scaleDownWindowMs), { at: now, replicas: wanted, envoys: latest!.envoys, backlog: panicking && !panicRecurs }];
  const state: DecisionState = { mode, modeUntil, panicUntil, panicRecurs, recommendations, since: prev.since };

  if (base < p.minReplicas) return decision(p.minReplicas, 'below-min', mode, panicking, wanted, state);
  // The pods' own queues, when the policy listens to them: waiting requests or a full KV cache mean the pods
  // are past what they serve well, whatever the in-flight count says.
  const qs = p.queueSignal;
  const queuePressure = q !== undefined && qs !== null &&
    ((qs.waitingPerPod !== null && q.waiting / Math.max(1, replicas.ready) >= qs.waitingPerPod) || (qs.kvCacheUsage !== null && q.kvCacheUsage !== null && q.kvCacheUsage >= qs.kvCacheUsage));
  if (base > p.maxReplicas) return decision(p.maxReplicas, 'above-max', mode, panicking, wanted, state);

  if (queuePressure && wanted <= base) {
    if (base >= p.maxReplicas) return decision(base, 'at-max', mode, panicking, wanted, state);
    const cap = upCap(replicas.ready, m);
    return cap <= base ? decision(base, 'capacity-on-the-way', mode, panicking, wanted, state) : decision(Math.min(cap, p.maxReplicas), 'queue-pressure', mode, panicking, wanted, state);
  }
  if (wanted > base) {
    if (base > 0 && (wanted - base) / base <= p.tolerance) return decision(base, 'within-tolerance', mode, panicking, wanted, state);
    if (base >= p.maxReplicas) return decision(base, 'at-max', mode, panicking, wanted, state);
    // The step is measured from the pods that serve, and pods still starting have used it: measured from
    // spec.replicas, a decision every second while pods load for minutes would compound it, and the queue that
    // builds meanwhile (in flight counts it) would carry the fleet far past what the rate needs.
    const cap = upCap(replicas.ready, m);
    if (cap <= base) return decision(base, 'capacity-on-the-way', mode, panicking, wanted, state);
    return decision(Math.min(wanted, cap, p.maxReplicas), panicking ? 'panic-scale-up' : 'scale-up', mode, panicking, wanted, state);
  }
  if (wanted === base) {
    // Asked-for pods still loading are the capacity this demand needs: nothing more to add.
    const reason: Reason = replicas.ready < base ? 'capacity-on-the-way' : unbounded > p.maxReplicas ? 'at-max' : unbounded < p.minReplicas ? 'at-min' : 'within-tolerance';
    return decision(base, reason, mode, panicking, wanted, state);
  }
  // wanted < base: down only calmly, slowly, and on a full window of evidence.
  if (panicking) return decision(base, 'panic-no-scale-down', mode, panicking, wanted, state);
  if (m.maxDownPercent <= 0) return decision(base, 'scale-down-stabilizing', mode, panicking, wanted, state);
  if ((base - wanted) / base <= p.scaleDownTolerance) return decision(base, 'within-tolerance', mode, panicking, wanted, state);
  if (base <= p.minReplicas) return decision(base, 'at-min', mode, panicking, wanted, state);
  // Envoys that stopped reporting look exactly like load that went away: while fewer report than did within the
  // window (beyond the tolerance), the lower total is not evidence.
  const mostEnvoys = Math.max(...recommendations.map((r) => r.envoys));
  if (latest!.envoys < mostEnvoys * (1 - p.tolerance)) return decision(base, 'fewer-reporters', mode, panicking, wanted, state);
  const haveFullWindow = prev.since <= now - p.scaleDownWindowMs;
  const stabilized = Math.max(...recommendations.filter((r) => !r.backlog).map((r) => r.replicas));
  if (!haveFullWindow || stabilized >= base) return decision(base, 'scale-down-stabilizing', mode, panicking, wanted, state);
  const floor = Math.min(base - 1, Math.floor((base * (100 - m.maxDownPercent)) / 100));
  const next = Math.max(stabilized, floor, p.minReplicas);
  return decision(next, next < base ? 'scale-down' : 'scale-down-stabilizing', mode, panicking, wanted, state);
}
