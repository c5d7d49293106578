import { steadyState, type SteadyState } from '../sim/hardware.js';
import { podSpeed } from './fleet.js';
import type { Scaling, Scenario } from './scenario.js';
import { createRandom } from './random.js';
import { patternRate, stackedCounts, tokenQuantiles, traceQuantiles } from './traffic.js';

/** Token counts the aggregate simulation evaluates per pod and second (quantiles of output, mean input). */
export const TOKEN_POINTS = 6;

/** The offered rate (requests/s) at `t` seconds, for either simulation mode. */
export function rateFunction(s: Scenario): (t: number) => number {
  const tr = s.traffic;
  switch (tr.kind) {
    case 'pattern':
      return (t) => patternRate(tr, t);
    case 'constant': {
      const rps = tr.rps ?? tr.load! * fixedCapacity(s);
      return () => rps;
    }
    case 'trace': {
      if (tr.scale !== 1) {
        const length = tr.arrivals[tr.arrivals.length - 1]!.t + 1;
        const counts = stackedCounts(tr.arrivals, length, tr.scale, tr.shiftS, createRandom(s.seed ^ 0x2545f491));
        return (t) => counts[Math.floor(t)] ?? 0;
      }
      const counts = new Float64Array(Math.ceil(s.durationS) + 1);
      for (const a of tr.arrivals) if (a.t < s.durationS) counts[Math.floor(a.t)]! += 1;
      return (t) => counts[Math.floor(t)] ?? 0;
    }
  }
}

/** Requests/s the fixed fleet serves with full batches: what `constant: { load }` is a fraction of. */
export function fixedCapacity(s: Scenario): number {
  const fixed = s.runs.find((r) => r.scaling.kind === 'fixed');
  const n = fixed && fixed.scaling.kind === 'fixed' && typeof fixed.scaling.replicas === 'number' ? fixed.scaling.replicas : 0;
  const curve = engineCurve(s);
  let capacity = 0;
  for (let id = 0; id < n; id++) capacity += curve.throughput(curve.maxConcurrency) / podSpeed(s, id, 0);
  return capacity;
}

/** The scenario's engine in steady state for its mean request, on a nominal pod (src/sim/hardware.ts). */
export function engineCurve(s: Scenario): SteadyState {
  const m = meanTokens(s);
  return steadyState(s.engine, m.input, m.output);
}

/** The mean request's token counts: over the trace or the token spec, or the classes' mix weighted by share. */
export function meanTokens(s: Scenario): { input: number; output: number } {
  if (s.classes.length > 0) {
    let input = 0;
    let output = 0;
    for (const c of s.classes) {
      input += c.share * c.inputTokens.mean;
      output += c.share * (tokenQuantiles(c.outputTokens, TOKEN_POINTS).reduce((n, x) => n + x, 0) / TOKEN_POINTS);
    }
    return { input, output };
  }
  const points = tokenPoints(s);
  return { input: points.reduce((n, t) => n + t.input, 0) / points.length, output: points.reduce((n, t) => n + t.output, 0) / points.length };
}

/** Token counts standing for the scenario's requests: output at evenly spaced quantiles, input at its mean. */
export function tokenPoints(s: Scenario): { input: number; output: number }[] {
  const tr = s.traffic;
  if (tr.kind === 'trace') {
    const input = tr.arrivals.reduce((n, a) => n + a.inputTokens, 0) / tr.arrivals.length;
    return traceQuantiles(tr.arrivals.map((a) => a.outputTokens), TOKEN_POINTS).map((output) => ({ input, output }));
  }
  return tokenQuantiles(s.outputTokens, TOKEN_POINTS).map((output) => ({ input: s.inputTokens.mean, output }));
}

/** Pods the scenario's peak needs at `targetPerPod` in flight each (`fixed: peak`). */
export function sizeFor(s: Scenario): number {
  const rate = rateFunction(s);
  let peak = 0;
  for (let t = 0; t < s.durationS; t += 10) peak = Math.max(peak, rate(t));
  return podsFor(s, peak);
}

/** Pods that hold `lambda` requests/s at `targetPerPod` in flight each (Little's law at the target's latency). */
export function podsFor(s: Scenario, lambda: number): number {
  const curve = engineCurve(s);
  const target = Math.min(s.targetPerPod, curve.maxConcurrency);
  return Math.max(1, Math.ceil((lambda * curve.latencyMs(target)) / 1000 / target));
}

/** How a run's scaling reads in the report. */
export function scalingLabel(sc: Scaling): string {
  switch (sc.kind) {
    case 'policy': return `inferplane policy (${sc.source})`;
    case 'kpa': return 'KPA-like (Knative defaults)';
    case 'hpa': return 'HPA-like (Kubernetes defaults)';
    case 'fixed': return `fixed fleet (${sc.replicas === 'peak' ? 'sized for the peak' : `${sc.replicas} pods`})`;
    case 'oracle': return 'oracle (perfect foresight, no cold start)';
    case 'exact-rate': return `exact rate now, +${Math.round(sc.headroom * 100)}% (no lag, cold starts)`;
  }
}
