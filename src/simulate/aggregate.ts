import type { SteadyState } from '../sim/hardware.js';
import { fixedScaler, hpaScaler, kpaScaler, policyScaler, type Autoscaler } from './autoscalers.js';
import { Fleet, podSpeed, type Pod } from './fleet.js';
import { createRandom } from './random.js';
import { RunRecorder, type RunResult } from './results.js';
import type { RunSpec, Scenario } from './scenario.js';
import { engineCurve, podsFor, rateFunction, scalingLabel, sizeFor, tokenPoints } from './common.js';

/** Seconds per step of the aggregate simulation. */
const TICK_S = 1;

interface PodFlow {
  /** Requests waiting beyond the batch (fluid). */
  queue: number;
  /** Sequences in the batch (fluid). */
  running: number;
}

/**
 * The aggregate ("fluid") simulation of one run: every second, the offered rate is split over the ready pods
 * as the balancer policy would split it in steady state, and each pod's batch and queue follow from the
 * engine model's steady state (src/sim/hardware.ts, {@link SteadyState}: the per-request engine's closed form).
 *
 * - least request (two choices) keeps in-flight counts nearly equal across pods, so in the fluid limit every
 *   pod holds the same number in flight and a slow pod serves proportionally less; once the batches are full
 *   the excess queues where the queues are shortest;
 * - round robin and random give every pod the same rate, so a slow pod's queue grows once its rate exceeds
 *   what it can serve;
 * - a request's latency is its wait behind the pod's queue plus its output tokens × the step time at the pod's
 *   batch size, for token counts at `TOKEN_POINTS` quantiles of the scenario's distribution.
 *
 * What it cannot see: fluctuations below the steady state (Poisson bursts within a second, a balancer's view
 * of its own requests only). Those decide the tail near saturation; the per-request mode has them, and
 * `npm run bench -- --only simulate` measures the difference.
 */
export function runAggregate(s: Scenario, run: RunSpec): RunResult {
  const random = createRandom(s.seed);
  const rate = rateFunction(s);
  const tokens = tokenPoints(s);
  const curve = engineCurve(s);
  const B = curve.maxConcurrency;
  const full = curve.throughput(B);
  const muMax = (speed: number) => full / speed;
  const oracle = run.scaling.kind === 'oracle';
  const headroom = run.scaling.kind === 'exact-rate' ? run.scaling.headroom : undefined;
  const fleet = new Fleet(s, random, oracle);
  // Weak: a pod the fleet dropped (the oracle drops them at once) takes its flow with it.
  const flows = new WeakMap<Pod, PodFlow>();
  const scaler: Autoscaler | null = scalerFor(s, run);
  const rec = new RunRecorder(s.sloMs);
  const flowOf = (p: Pod) => {
    let f = flows.get(p);
    if (!f) flows.set(p, (f = { queue: 0, running: 0 }));
    return f;
  };
  fleet.seed(initialReplicas(s, run, rate(0)), 0);
  let nextFlush = 0;
  let nextDecision = scaler ? scaler.intervalS : Infinity;
  const groups: { speed: number; running: number; wait: number; requests: number }[] = [];
  const seconds = Math.ceil(s.durationS / TICK_S);
  for (let step = 0; step < seconds; step++) {
    const t = step * TICK_S;
    const lambda = rate(t);
    if (oracle) fleet.setDesired(oracleSize(s, fleet, lambda, t, muMax), t);
    // The best a scaler without foresight can do: the oracle's sizing for this second's rate, plus headroom.
    else if (headroom !== undefined) fleet.setDesired(oracleSize(s, fleet, lambda * (1 + headroom), t, muMax), t);
    fleet.advance(t);
    const ready = fleet.ready();
    const speeds = ready.map((p) => podSpeed(s, p.id, t));
    const arrivals = new Float64Array(ready.length);
    const waits = new Float64Array(ready.length);
    if (ready.length === 0) {
      if (lambda > 0) rec.failed(lambda * TICK_S);
    } else if (run.balancer === 'least-request') {
      splitEqualInFlight(ready.map(flowOf), speeds, lambda, arrivals, waits, curve, muMax);
    } else {
      splitEvenly(ready.map(flowOf), speeds, lambda, arrivals, waits, curve, muMax);
    }
    // Pods alike (same speed, batch and wait: most of them, under least request) are recorded together.
    groups.length = 0;
    for (let i = 0; i < ready.length; i++) {
      const n = arrivals[i]! * TICK_S;
      if (n <= 0) continue;
      const running = flowOf(ready[i]!).running;
      const g = groups.find((x) => x.speed === speeds[i] && x.running === running && x.wait === waits[i]);
      if (g) g.requests += n;
      else groups.push({ speed: speeds[i]!, running, wait: waits[i]!, requests: n });
    }
    for (const g of groups) {
      const w = g.requests / tokens.length;
      for (const tk of tokens) rec.latency(g.wait + g.speed * curve.latencyMs(g.running, tk.output), w);
    }
    // Draining pods take nothing new: their queue empties, then their batch.
    for (const p of [...fleet.pods]) {
      if (p.state !== 'draining') continue;
      const f = flowOf(p);
      const mu = muMax(podSpeed(s, p.id, t));
      if (f.queue > 0) f.queue = Math.max(0, f.queue - mu * TICK_S);
      else if (f.running > 0) f.running = Math.max(0, f.running - mu * TICK_S);
      if (f.queue <= 0 && f.running <= 0) {
        fleet.remove(p);
        flows.delete(p);
      }
    }
    rec.gpu(fleet.pods.length, TICK_S);
    if (scaler && t + TICK_S > nextFlush) {
      let inFlight = 0;
      for (const p of fleet.pods) {
        const f = flows.get(p);
        if (f) inFlight += f.running + f.queue;
      }
      for (; nextFlush < t + TICK_S; nextFlush += s.flushS) scaler.observe({ at: Math.round(nextFlush * 1000), activeRequests: inFlight, envoys: s.balancers });
    }
    if (scaler && t + TICK_S >= nextDecision) {
      const d = scaler.decide(t + TICK_S, fleet.spec(), fleet.count('ready'));
      for (const p of fleet.setDesired(d.replicas, t + TICK_S)) flowOf(p);
      nextDecision += scaler.intervalS;
    }
    if ((step + 1) % 60 === 0 || step === seconds - 1) {
      rec.endMinute(Math.floor(t / 60), { desired: fleet.spec(), ready: fleet.count('ready'), pods: fleet.pods.length, scaleEvents: fleet.scaleEvents });
    }
  }
  return rec.result(run.name, run.balancer, scalingLabel(run.scaling));
}

/** The scaler a run names; null for a fixed fleet, the oracle or an exact-rate run, which the loop sizes itself. */
export function scalerFor(s: Scenario, run: RunSpec): Autoscaler | null {
  const sc = run.scaling;
  switch (sc.kind) {
    case 'policy': return policyScaler(sc.policy);
    case 'kpa': return kpaScaler(s.targetPerPod);
    case 'hpa': return hpaScaler(s.targetPerPod);
    case 'fixed': return null;
    case 'oracle': return null;
    case 'exact-rate': return null;
  }
}

/** Pods at the start: a fixed fleet's size, or what the first second's rate needs at the target. */
function initialReplicas(s: Scenario, run: RunSpec, lambda0: number): number {
  const sc = run.scaling;
  if (sc.kind === 'fixed') return sc.replicas === 'peak' ? sizeFor(s) : sc.replicas;
  return Math.max(sc.kind === 'policy' ? sc.policy.minReplicas : 1, podsFor(s, lambda0));
}

/** The smallest batch c in [0, B] whose throughput reaches `rate` (throughput grows with the batch), by bisection. */
function batchFor(curve: SteadyState, rate: number): number {
  let lo = 0;
  let hi = curve.maxConcurrency;
  for (let k = 0; k < 40; k++) {
    const mid = (lo + hi) / 2;
    if (curve.throughput(mid) >= rate) hi = mid;
    else lo = mid;
  }
  return hi;
}

/**
 * The fewest pods whose full batches serve `lambda` with 1% to spare (so a queue, once formed, drains): the
 * pods there are, oldest first (a smaller fleet keeps its oldest), then new ones, with their speeds now.
 */
function oracleSize(s: Scenario, fleet: Fleet, lambda: number, t: number, muMax: (speed: number) => number): number {
  const ids = fleet.pods.map((p) => p.id).sort((x, y) => x - y);
  let next = ids.length > 0 ? ids[ids.length - 1]! + 1 : 0;
  let capacity = 0;
  let n = 0;
  while (capacity < lambda * 1.01) capacity += muMax(podSpeed(s, n < ids.length ? ids[n]! : next++, t)), n++;
  return Math.max(1, n);
}

/**
 * Least request in the fluid limit: pods without a queue hold the same in-flight count F, chosen so their
 * throughputs sum to λ (pod i serves throughput(F) / s_i); pods with a queue get nothing until it drains. When
 * even full batches cannot serve λ, every pod serves at its maximum and the excess joins the shortest queues.
 */
function splitEqualInFlight(flows: PodFlow[], speeds: number[], lambda: number, arrivals: Float64Array, waits: Float64Array, curve: SteadyState, muMax: (speed: number) => number): void {
  const B = curve.maxConcurrency;
  let inv = 0;
  for (let i = 0; i < flows.length; i++) if (flows[i]!.queue <= 0) inv += 1 / speeds[i]!;
  // Σ throughput(F) / s_i = λ
  const F = inv > 0 && curve.throughput(B) * inv >= lambda ? batchFor(curve, lambda / inv) : Infinity;
  if (F <= B) {
    // Nobody waits: a queued pod takes no new requests while its queue drains.
    for (let i = 0; i < flows.length; i++) {
      const f = flows[i]!;
      if (f.queue > 0) {
        f.running = B;
        f.queue = Math.max(0, f.queue - muMax(speeds[i]!) * TICK_S);
      } else {
        f.running = F;
        arrivals[i] = curve.throughput(F) / speeds[i]!;
      }
    }
    return;
  }
  // Saturated: queues level out, none dropping faster than its pod serves.
  let served = 0;
  const floors = flows.map((f, i) => {
    const mu = muMax(speeds[i]!);
    served += mu;
    return Math.max(0, f.queue - mu * TICK_S);
  });
  const volume = flows.reduce((n, f) => n + f.queue, 0) + (lambda - served) * TICK_S;
  let lo = 0;
  let hi = Math.max(volume, ...floors);
  for (let k = 0; k < 50; k++) {
    const h = (lo + hi) / 2;
    const v = floors.reduce((n, fl) => n + Math.max(h, fl), 0);
    if (v > volume) hi = h;
    else lo = h;
  }
  for (let i = 0; i < flows.length; i++) {
    const f = flows[i]!;
    const mu = muMax(speeds[i]!);
    const next = Math.max(lo, floors[i]!);
    arrivals[i] = Math.max(0, (next - f.queue) / TICK_S + mu);
    waits[i] = (1000 * (f.queue + next)) / 2 / mu;
    f.queue = next;
    f.running = B;
  }
}

/** Round robin and random in the fluid limit: the same rate to every pod, whatever it can serve. */
function splitEvenly(flows: PodFlow[], speeds: number[], lambda: number, arrivals: Float64Array, waits: Float64Array, curve: SteadyState, muMax: (speed: number) => number): void {
  const B = curve.maxConcurrency;
  const each = lambda / flows.length;
  for (let i = 0; i < flows.length; i++) {
    const f = flows[i]!;
    const s = speeds[i]!;
    const mu = muMax(s);
    arrivals[i] = each;
    if (f.queue > 0 || each > mu) {
      const next = Math.max(0, f.queue + (each - mu) * TICK_S);
      waits[i] = (1000 * (f.queue + next)) / 2 / mu;
      f.queue = next;
      f.running = B;
    } else {
      // The batch at which the pod, s times slower, serves what it is sent.
      f.running = batchFor(curve, each * s);
    }
  }
}
