import { decide, type DecisionState, type FleetSample, type ScalingPolicy } from '../scaler/decide.js';

/** What sizes a simulated fleet: fed the Envoys' samples, asked for a replica count every `intervalS`. */
export interface Autoscaler {
  readonly intervalS: number;
  /** A fleet total as the stats sink delivers it (`at` in ms of simulated time). */
  observe(sample: FleetSample): void;
  /** The replica count to set now; `desired` is spec.replicas, `ready` the pods ready to serve. */
  decide(nowS: number, desired: number, ready: number): { replicas: number; reason: string; mode: string | null };
}

/** inferplane's own scaler: {@link decide} with the policy, exactly as the live scaler calls it (every second). */
export function policyScaler(policy: ScalingPolicy, intervalS = 1): Autoscaler {
  const history: FleetSample[] = [];
  let state: DecisionState | undefined;
  const keepMs = Math.max(policy.stableWindowMs, policy.panicWindowMs) + 1000;
  return {
    intervalS,
    observe(sample) {
      history.push(sample);
      // The live scaler keeps one stable window of samples; so does this.
      trim(history, sample.at - keepMs);
    },
    decide(nowS, desired, ready) {
      const d = decide({ history, replicas: { desired, ready }, policy, now: nowS * 1000, ...(state && { state }) });
      state = d.state;
      return { replicas: d.replicas, reason: d.reason, mode: d.mode };
    },
  };
}

/** Drops samples at or before `fromMs` (history is in time order). */
function trim(history: FleetSample[], fromMs: number): void {
  let drop = 0;
  while (drop < history.length && history[drop]!.at <= fromMs) drop++;
  if (drop > 0) history.splice(0, drop);
}

/** Mean of the samples' totals with `at` in (now − windowMs, now]; null when none. */
function windowMean(history: readonly FleetSample[], nowMs: number, windowMs: number): number | null {
  let sum = 0;
  let n = 0;
  for (let i = history.length - 1; i >= 0 && history[i]!.at > nowMs - windowMs; i--) {
    sum += history[i]!.activeRequests;
    n++;
  }
  return n === 0 ? null : sum / n;
}

/**
 * Knative's KPA with its published defaults (config-autoscaler): stable window 60 s, panic window 10% of it,
 * panic threshold 200%, max scale-up rate 1000, max scale-down rate 2, scale-down delay 0, a decision every
 * 2 s. The per-pod target is the scenario's (`targetPerPod`), the same for every run, so that the runs differ
 * by algorithm only.
 */
export function kpaScaler(targetPerPod: number, minReplicas = 1, maxReplicas = 1000): Autoscaler {
  const stableMs = 60_000;
  const panicMs = 6_000;
  const history: FleetSample[] = [];
  let panicSince: number | null = null; // the last time over the panic threshold, while panicking
  let maxPanicPods = 0;
  return {
    intervalS: 2,
    observe(sample) {
      history.push(sample);
      trim(history, sample.at - stableMs - 1000);
    },
    decide(nowS, desired, ready) {
      const now = nowS * 1000;
      const stable = windowMean(history, now, stableMs);
      const panic = windowMean(history, now, panicMs);
      if (stable === null || panic === null) return { replicas: desired, reason: 'no-data', mode: null };
      const readyPods = Math.max(1, ready);
      const maxUp = Math.ceil(1000 * readyPods);
      const maxDown = Math.floor(readyPods / 2);
      const clampRate = (n: number) => Math.min(maxUp, Math.max(maxDown, n));
      const dspc = clampRate(Math.ceil(stable / targetPerPod));
      const dppc = clampRate(Math.ceil(panic / targetPerPod));
      const over = dppc / readyPods >= 2;
      // Panic starts when over the threshold, is extended while over, and ends a stable window after the last time.
      if (over) panicSince = now;
      else if (panicSince !== null && panicSince + stableMs < now) {
        panicSince = null;
        maxPanicPods = 0;
      }
      let want = dspc;
      let reason = 'stable';
      if (panicSince !== null) {
        // Never down while panicking.
        want = Math.max(dspc, dppc);
        if (want > maxPanicPods) maxPanicPods = want;
        else want = maxPanicPods;
        reason = 'panic';
      }
      return { replicas: Math.min(maxReplicas, Math.max(minReplicas, want)), reason, mode: panicSince !== null ? 'panic' : 'stable' };
    },
  };
}

/**
 * Kubernetes' HPA with its published defaults, on a Pods metric (average in-flight requests per pod through a
 * metrics adapter, taken as the mean over the last 30 s): a sync every 15 s, tolerance 10%, not-ready pods
 * counted at zero on scale-up, scale-up by at most max(100%, 4 pods) per 15 s with no stabilisation,
 * scale-down to the highest recommendation of the last 300 s, by at most 100% per 15 s.
 */
export function hpaScaler(targetPerPod: number, minReplicas = 1, maxReplicas = 1000): Autoscaler {
  const history: FleetSample[] = [];
  const recommendations: { at: number; replicas: number }[] = [];
  return {
    intervalS: 15,
    observe(sample) {
      history.push(sample);
      trim(history, sample.at - 31_000);
    },
    decide(nowS, desired, ready) {
      const now = nowS * 1000;
      const total = windowMean(history, now, 30_000);
      if (total === null || ready === 0) return { replicas: desired, reason: 'no-metrics', mode: null };
      const ratio = total / ready / targetPerPod;
      let raw = desired;
      if (Math.abs(ratio - 1) > 0.1) {
        raw = Math.ceil(ratio * ready);
        // Pods not ready yet count at zero: a scale-up must still be called for with them in.
        if (raw > desired && desired > ready) {
          const withUnready = total / desired / targetPerPod;
          raw = withUnready > 1.1 ? Math.ceil(withUnready * desired) : desired;
        }
      }
      recommendations.push({ at: now, replicas: raw });
      while (recommendations[0]!.at <= now - 300_000) recommendations.shift();
      let want = raw;
      if (raw < desired) want = Math.min(desired, Math.max(...recommendations.map((r) => r.replicas)));
      if (want > desired) want = Math.min(want, Math.max(2 * desired, desired + 4));
      return { replicas: Math.min(maxReplicas, Math.max(minReplicas, want)), reason: want > desired ? 'scale-up' : want < desired ? 'scale-down' : 'hold', mode: null };
    },
  };
}

/** A fleet that never changes. */
export function fixedScaler(replicas: number): Autoscaler {
  return { intervalS: 60, observe: () => {}, decide: () => ({ replicas, reason: 'fixed', mode: null }) };
}
