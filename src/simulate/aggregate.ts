import { steadyState, type EngineSpec, type SteadyState } from '../sim/hardware.js';
import type { Mode } from '../model/model.js';
import { fixedScaler, hpaScaler, kpaScaler, policyScaler, type Autoscaler } from './autoscalers.js';
import { Fleet, podSpeed, type Pod } from './fleet.js';
import { createRandom } from './random.js';
import { RunRecorder, type ClassResult, type RunResult } from './results.js';
import type { RunSpec, Scenario, TrafficClass } from './scenario.js';
import { engineCurve, meanTokens, podsFor, rateFunction, scalingLabel, sizeFor, TOKEN_POINTS, tokenPoints } from './common.js';
import { tokenQuantiles } from './traffic.js';

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
  const oracle = run.scaling.kind === 'oracle';
  const headroom = run.scaling.kind === 'exact-rate' ? run.scaling.headroom : undefined;
  const main = new FluidFleet(s, new Fleet(s, random, oracle, run.coldStart ?? s.coldStart), engineCurve(s), s.engine.gpus, run.balancer);
  // The oracle and the exact-rate bound fill batches only as far as the SLO allows: with long answers a full
  // batch is cheapest but too slow.
  const sizingFull = oracle || headroom !== undefined ? main.curve.throughput(sloBatch(s, main.curve)) : 0;
  const sizingRate = (speed: number) => sizingFull / speed;
  const fb = s.service?.fallback ?? null;
  const fallback = fb ? new FluidFleet(s, new Fleet(s, random, true), steadyStateOf(fb.engine, s), fb.engine.gpus, run.balancer) : null;
  fallback?.fleet.seed(fb!.replicas, 0);
  const scaler: Autoscaler | null = scalerFor(s, run);
  const rec = new RunRecorder(s.sloMs);
  const classes = classStates(s);
  const settings = s.service?.service.settings ?? null;
  let mode: Mode = run.forcedMode ?? 'normal';
  main.fleet.seed(initialReplicas(s, run, rate(0)), 0);
  let nextFlush = 0;
  let nextDecision = scaler ? scaler.intervalS : Infinity;
  const seconds = Math.ceil(s.durationS / TICK_S);
  let fallbackGpuSeconds = 0;
  const saturatedMinutes: number[] = [];
  for (let step = 0; step < seconds; step++) {
    const t = step * TICK_S;
    const lambda = rate(t);
    if (oracle) main.fleet.setDesired(oracleSize(s, main.fleet, lambda, t, sizingRate), t);
    // The best a scaler without foresight can do: the oracle's sizing for this second's rate, plus headroom.
    else if (headroom !== undefined) main.fleet.setDesired(oracleSize(s, main.fleet, lambda * (1 + headroom), t, sizingRate), t);
    main.fleet.advance(t);
    // The data plane as it is published in this mode (model.ts applyPlaybooks): shed routes, a fallback, a timeout.
    const pb = mode === 'normal' ? null : settings?.playbooks[mode] ?? null;
    const timeoutMs = (pb?.timeoutMs ?? settings?.timeoutMs ?? 0) || Infinity;
    const toFallback = pb?.fallback && fallback ? fallback : null;
    let mainRate = 0;
    let fallbackRate = 0;
    for (const c of classes) {
      const fresh = c.spec.share * lambda * TICK_S;
      c.requests += fresh;
      let arriving = fresh;
      if (c.retries) for (let a = 1; a < c.retries.length; a++) arriving += c.retries[a]![step]!;
      if (pb && c.spec.route !== null && pb.shed.includes(c.spec.route)) {
        // Envoy answers 503 with Retry-After at once; a client sends it again after that long, up to its retries.
        const after = Math.max(1, Math.round(pb.retryAfterSeconds / TICK_S));
        for (let a = 0; a < (c.retries?.length ?? 1); a++) {
          const n = a === 0 ? fresh : c.retries![a]![step]!;
          c.shedAnswers += n;
          if (c.retries && a + 1 < c.retries.length && step + after < seconds) c.retries[a + 1]![step + after]! += n;
          else c.shedLost += n;
        }
        c.routedTo = null;
        c.arriving = 0;
        continue;
      }
      c.arriving = arriving;
      c.routedTo = toFallback ? 'fallback' : 'main';
      if (toFallback) {
        fallbackRate += arriving / TICK_S;
        c.fallback += arriving;
      } else mainRate += arriving / TICK_S;
    }
    const failedMain = main.serve(mainRate, t);
    const failedFallback = fallback ? fallback.serve(fallbackRate, t) : 0;
    const minute = Math.floor(t / 60);
    if ((main.saturated || fallback?.saturated) && saturatedMinutes[saturatedMinutes.length - 1] !== minute) saturatedMinutes.push(minute);
    for (const c of classes) {
      if (c.routedTo === null || c.arriving <= 0) continue;
      const fleet = c.routedTo === 'main' ? main : fallback!;
      const total = (c.routedTo === 'main' ? mainRate : fallbackRate) * TICK_S;
      const share = c.arriving / total;
      const failed = (c.routedTo === 'main' ? failedMain : failedFallback) * share;
      if (failed > 0) {
        c.rec.failed(failed);
        rec.failed(failed);
      }
      for (const g of fleet.groups) {
        const w = (g.requests * share) / c.tokens.length;
        for (const tk of c.tokens) {
          const ms = g.wait + g.speed * fleet.curve.latencyMs(g.running, tk.output);
          if (ms > timeoutMs) {
            // Envoy cuts it at the timeout: an error to the client (504), whatever the pod goes on to do.
            c.timeouts += w;
            c.rec.failed(w);
            rec.failed(w);
          } else {
            c.rec.latency(ms, w);
            rec.latency(ms, w);
          }
        }
      }
    }
    main.drain(t);
    fallback?.drain(t);
    rec.gpu(main.fleet.pods.length, TICK_S, main.gpusPerPod);
    if (fallback) fallbackGpuSeconds += fallback.fleet.pods.length * fallback.gpusPerPod * TICK_S;
    if (scaler && t + TICK_S > nextFlush) {
      // Envoy's upstream_rq_active of the service's own cluster: shed requests never reach it, fallback ones go to another.
      const inFlight = main.inFlight();
      for (; nextFlush < t + TICK_S; nextFlush += s.flushS) scaler.observe({ at: Math.round(nextFlush * 1000), activeRequests: inFlight, envoys: s.balancers });
    }
    if (scaler && t + TICK_S >= nextDecision) {
      const d = scaler.decide(t + TICK_S, main.fleet.spec(), main.fleet.count('ready'));
      for (const p of main.fleet.setDesired(d.replicas, t + TICK_S)) main.flowOf(p);
      if (d.mode !== null) mode = d.mode as Mode;
      nextDecision += scaler.intervalS;
    }
    if ((step + 1) % 60 === 0 || step === seconds - 1) {
      const fleetNow = { desired: main.fleet.spec(), ready: main.fleet.count('ready'), pods: main.fleet.pods.length, scaleEvents: main.fleet.scaleEvents };
      rec.endMinute(Math.floor(t / 60), fleetNow);
      for (const c of classes) c.rec.endMinute(Math.floor(t / 60), fleetNow);
    }
  }
  const result = { ...rec.result(run.name, run.balancer, scalingLabel(run.scaling)), saturatedMinutes };
  if (s.classes.length === 0 && !fallback) return result;
  return {
    ...result,
    overall: { ...result.overall, gpuHours: result.overall.gpuHours + fallbackGpuSeconds / 3600 },
    ...(fallback && { fallbackGpuHours: fallbackGpuSeconds / 3600 }),
    ...(s.classes.length > 0 && { classes: classes.map((c) => classResult(c, run.name)) }),
  };
}

/** One class's state in a run: its arrivals, retries of shed requests, where it goes this second, its figures. */
interface ClassState {
  readonly spec: TrafficClass;
  readonly tokens: readonly { input: number; output: number }[];
  readonly rec: RunRecorder;
  /** retries[a][step]: requests sent for the a-th time in that second after a 503 (null: no retries). */
  readonly retries: Float64Array[] | null;
  requests: number;
  shedAnswers: number;
  shedLost: number;
  fallback: number;
  timeouts: number;
  arriving: number;
  routedTo: 'main' | 'fallback' | null;
}

function classStates(s: Scenario): ClassState[] {
  const seconds = Math.ceil(s.durationS / TICK_S);
  const specs: TrafficClass[] = s.classes.length > 0 ? [...s.classes] : [{ name: 'all', share: 1, route: null, sloMs: s.sloMs, inputTokens: s.inputTokens, outputTokens: s.outputTokens }];
  const sheds = s.service !== null && Object.values(s.service.service.settings.playbooks).some((pb) => (pb?.shed.length ?? 0) > 0);
  return specs.map((spec) => ({
    spec,
    tokens: s.classes.length > 0 ? tokenQuantiles(spec.outputTokens, TOKEN_POINTS).map((output) => ({ input: spec.inputTokens.mean, output })) : tokenPoints(s),
    rec: new RunRecorder(spec.sloMs),
    retries: sheds && spec.route !== null ? Array.from({ length: s.service!.shedRetries + 1 }, () => new Float64Array(seconds)) : null,
    requests: 0, shedAnswers: 0, shedLost: 0, fallback: 0, timeouts: 0, arriving: 0, routedTo: null,
  }));
}

function classResult(c: ClassState, run: string): ClassResult {
  const r = c.rec.result(run, '', '').overall;
  const pct = (n: number) => (c.requests > 0 ? (100 * n) / c.requests : 0);
  return {
    name: c.spec.name, route: c.spec.route, sloMs: c.spec.sloMs, requests: Math.round(c.requests),
    p50Ms: r.p50Ms, p99Ms: r.p99Ms, sloMinutes: r.sloMinutes, minuteCount: r.minuteCount,
    shedPercent: pct(c.shedLost), shedAnswers: Math.round(c.shedAnswers), fallbackPercent: pct(c.fallback), timeouts: Math.round(c.timeouts),
  };
}

/** One fleet in the fluid model: its pods' flows, split each second as the balancer splits them. */
class FluidFleet {
  // Weak: a pod the fleet dropped (the oracle drops them at once) takes its flow with it.
  private readonly flows = new WeakMap<Pod, PodFlow>();
  /** This second's arrivals, pods alike (same speed, batch and wait: most of them under least request) together. */
  readonly groups: { speed: number; running: number; wait: number; requests: number }[] = [];
  private readonly full: number;
  /** Whether, this tick, some pod had requests queued beyond its full batch. */
  saturated = false;

  constructor(private readonly s: Scenario, readonly fleet: Fleet, readonly curve: SteadyState, readonly gpusPerPod: number, private readonly balancer: RunSpec['balancer']) {
    this.full = curve.throughput(curve.maxConcurrency);
  }

  /** Requests/s a pod `speed`× slower serves at a full batch. */
  readonly muMax = (speed: number) => this.full / speed;

  flowOf(p: Pod): PodFlow {
    let f = this.flows.get(p);
    if (!f) this.flows.set(p, (f = { queue: 0, running: 0 }));
    return f;
  }

  /** Splits `lambda` requests/s over the ready pods for one tick; returns the requests that found none. */
  serve(lambda: number, t: number): number {
    this.groups.length = 0;
    const ready = this.fleet.ready();
    this.saturated = false;
    if (ready.length === 0) return lambda * TICK_S;
    const speeds = ready.map((p) => podSpeed(this.s, p.id, t));
    const arrivals = new Float64Array(ready.length);
    const waits = new Float64Array(ready.length);
    const flows = ready.map((p) => this.flowOf(p));
    if (this.balancer === 'least-request') splitEqualInFlight(flows, speeds, lambda, arrivals, waits, this.curve, this.muMax);
    else splitEvenly(flows, speeds, lambda, arrivals, waits, this.curve, this.muMax);
    this.saturated = flows.some((f) => f.queue > 0);
    for (let i = 0; i < ready.length; i++) {
      const n = arrivals[i]! * TICK_S;
      if (n <= 0) continue;
      const running = flows[i]!.running;
      const g = this.groups.find((x) => x.speed === speeds[i] && x.running === running && x.wait === waits[i]);
      if (g) g.requests += n;
      else this.groups.push({ speed: speeds[i]!, running, wait: waits[i]!, requests: n });
    }
    return 0;
  }

  /** Draining pods take nothing new: their queue empties, then their batch; then they leave. */
  drain(t: number): void {
    for (const p of [...this.fleet.pods]) {
      if (p.state !== 'draining') continue;
      const f = this.flowOf(p);
      const mu = this.muMax(podSpeed(this.s, p.id, t));
      if (f.queue > 0) f.queue = Math.max(0, f.queue - mu * TICK_S);
      else if (f.running > 0) f.running = Math.max(0, f.running - mu * TICK_S);
      if (f.queue <= 0 && f.running <= 0) {
        this.fleet.remove(p);
        this.flows.delete(p);
      }
    }
  }

  /** Requests in flight on the fleet (running and queued), as Envoy counts them. */
  inFlight(): number {
    let n = 0;
    for (const p of this.fleet.pods) {
      const f = this.flows.get(p);
      if (f) n += f.running + f.queue;
    }
    return n;
  }
}

/** `engine` in steady state for the scenario's mean request (the fallback fleet's engine). */
function steadyStateOf(engine: EngineSpec, s: Scenario): SteadyState {
  const m = meanTokens(s);
  return steadyState(engine, m.input, m.output);
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
export function batchFor(curve: SteadyState, rate: number): number {
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
 * The largest batch at which the longest answer of the token points still meets the strictest SLO on a nominal
 * pod (the engine's largest batch when it does there, or when not even a lone request does): how full the
 * oracle and the exact-rate bound fill pods.
 */
function sloBatch(s: Scenario, curve: SteadyState): number {
  const longest = Math.max(...tokenPoints(s).map((t) => t.output), ...s.classes.flatMap((c) => tokenQuantiles(c.outputTokens, TOKEN_POINTS)));
  const slo = Math.min(s.sloMs, ...s.classes.map((c) => c.sloMs));
  // Met at a full batch, or not even by a lone request (then no batch size helps: fill them).
  if (curve.latencyMs(curve.maxConcurrency, longest) <= slo || curve.latencyMs(1, longest) > slo) return curve.maxConcurrency;
  let lo = 1;
  let hi = curve.maxConcurrency;
  for (let k = 0; k < 40; k++) {
    const mid = (lo + hi) / 2;
    if (curve.latencyMs(mid, longest) <= slo) lo = mid;
    else hi = mid;
  }
  return lo;
}

/**
 * The fewest pods whose batches (as full as {@link sloBatch} allows) serve `lambda` with 1% to spare (so a queue, once formed, drains): the
 * pods there are, oldest first (a smaller fleet keeps its oldest), then new ones, with their speeds now.
 */
function oracleSize(s: Scenario, fleet: Fleet, lambda: number, t: number, perPod: (speed: number) => number): number {
  const ids = fleet.pods.map((p) => p.id).sort((x, y) => x - y);
  let next = ids.length > 0 ? ids[ids.length - 1]! + 1 : 0;
  let capacity = 0;
  let n = 0;
  while (capacity < lambda * 1.01) capacity += perPod(podSpeed(s, n < ids.length ? ids[n]! : next++, t)), n++;
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
