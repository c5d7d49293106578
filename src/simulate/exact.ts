import { createEngine, type Engine, type EngineClock, type EngineParams } from '../sim/engine.js';
import { Fleet, podSpeed, type Pod } from './fleet.js';
import { createRandom, type Random } from './random.js';
import { RunRecorder, type RunResult } from './results.js';
import type { RunSpec, Scenario } from './scenario.js';
import { podsFor, rateFunction, scalingLabel, sizeFor } from './common.js';
import { drawTokens, type Arrival } from './traffic.js';
import { scalerFor } from './aggregate.js';
import { DEFAULT_WEIGHT_OPTIONS, nextWeights, NO_WEIGHTS, WEIGHT_PUBLISH_INTERVAL_MS, type WeightState } from '../balance/weights.js';
import { MAX_EXACT_REQUESTS } from '../config/defaults.js';

/** Most requests a per-request run may simulate (kept in config/defaults.ts for the command line's usage). */
export { MAX_EXACT_REQUESTS };

/** A min-heap of timed callbacks, ties in the order they were added: the same seed, the same run. */
class EventQueue {
  private times: number[] = [];
  private seqs: number[] = [];
  private fns: (() => void)[] = [];
  private seq = 0;

  push(at: number, fn: () => void): void {
    const t = this.times, q = this.seqs, f = this.fns;
    let i = t.length;
    const s = this.seq++;
    t.push(at);
    q.push(s);
    f.push(fn);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (t[p]! < at || (t[p] === at && q[p]! < s)) break;
      t[i] = t[p]!;
      q[i] = q[p]!;
      f[i] = f[p]!;
      i = p;
    }
    t[i] = at;
    q[i] = s;
    f[i] = fn;
  }

  /** The earliest event's time; Infinity when empty. */
  peek(): number {
    return this.times.length > 0 ? this.times[0]! : Infinity;
  }

  pop(): () => void {
    const t = this.times, q = this.seqs, f = this.fns;
    const top = f[0]!;
    const lastT = t.pop()!, lastQ = q.pop()!, lastF = f.pop()!;
    const n = t.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && (t[r]! < t[l]! || (t[r] === t[l] && q[r]! < q[l]!)) ? r : l;
        if (t[c]! > lastT || (t[c] === lastT && q[c]! > lastQ)) break;
        t[i] = t[c]!;
        q[i] = q[c]!;
        f[i] = f[c]!;
        i = c;
      }
      t[i] = lastT;
      q[i] = lastQ;
      f[i] = lastF;
    }
    return top;
  }
}

interface Host {
  readonly pod: Pod;
  readonly engine: Engine;
  /** Requests in flight to this pod as each balancer counts them (Envoy's per-host rq_active, per Envoy). */
  readonly local: Int32Array;
  /** The endpoint's load-balancing weight, as the control plane last set it. */
  weight: number;
  /** Per balancer: when this host is next due in its weighted schedule (NaN: not scheduled yet). */
  readonly due: Float64Array;
}

/**
 * The per-request simulation of one run: every request arrives (Poisson at the scenario's rate, or as the
 * trace has it), goes to one of the balancers at random, which picks a pod by its own counts exactly as Envoy
 * does, and runs on that pod's vLLM simulator engine (src/sim/engine.ts) on a virtual clock. Slow and noisy
 * pods run their engine with every duration stretched by their speed factor.
 */
export function runExact(s: Scenario, run: RunSpec): RunResult {
  const random = createRandom(s.seed);
  const balance = createRandom(s.seed ^ 0x5bd1e995);
  const rate = rateFunction(s);
  const events = new EventQueue();
  let now = 0; // ms
  const clock: EngineClock = { now: () => now, setTimeout: (fn, ms) => events.push(now + ms, fn) };
  const fleet = new Fleet(s, random, false, run.coldStart ?? s.coldStart);
  const scaler = scalerFor(s, run);
  const rec = new RunRecorder(s.sloMs);
  const E = s.balancers;
  const hosts: Host[] = [];
  const byPod = new Map<Pod, Host>();
  const rr = Int32Array.from({ length: E }, () => balance.int(1 << 30));
  // Load-aware weights: the control plane's (src/balance/weights.ts), once a second from the pods' own counts.
  let weightState: WeightState = NO_WEIGHTS;
  let weighted = false; // some weights differ: Envoy leaves two choices for its weighted schedule
  const now0 = new Float64Array(E); // each balancer's schedule time
  let lastPublished = -Infinity;
  let inFlight = 0;
  // Requests not finished by the end are recorded at their age then (a lower bound): a queue that never
  // drains must not vanish from the tail.
  const pending = new Set<{ readonly started: number }>();

  const addHost = (pod: Pod) => {
    const params: EngineParams = { spec: s.engine, get slowdown() { return podSpeed(s, pod.id, now / 1000); } };
    const h: Host = { pod, engine: createEngine(params, clock), local: new Int32Array(E), weight: weightState.weights.get(String(pod.id)) ?? DEFAULT_WEIGHT_OPTIONS.mean, due: new Float64Array(E).fill(NaN) };
    byPod.set(pod, h);
    hosts.push(h);
  };
  const sc = run.scaling;
  const first = sc.kind === 'fixed' ? (sc.replicas === 'peak' ? sizeFor(s) : sc.replicas)
    : Math.max(sc.kind === 'policy' ? sc.policy.minReplicas : 1, podsFor(s, rate(0)));
  fleet.seed(first, 0);
  for (const p of fleet.pods) addHost(p);

  const pick = (bal: number): Host => {
    const n = hosts.length;
    switch (run.balancer) {
      case 'least-request': {
        if (weighted) {
          // Envoy's least request with unequal weights: an earliest-deadline-first schedule in which a host is
          // re-queued, when picked, with weight / (its active requests + 1) (active_request_bias 1).
          let best = hosts[0]!;
          let due = Infinity;
          for (const h of hosts) {
            let d = h.due[bal]!;
            // A rebuilt schedule starts each host at a random phase, as Envoy seeds its scheduler with random
            // picks: otherwise every Envoy would send its first requests after an update to the same host.
            if (Number.isNaN(d)) h.due[bal] = d = now0[bal]! + (balance.next() * (h.local[bal]! + 1)) / h.weight;
            if (d < due) [best, due] = [h, d];
          }
          now0[bal] = due;
          best.due[bal] = due + (best.local[bal]! + 1) / best.weight;
          return best;
        }
        // Envoy's unweighted least request: choice_count draws (with replacement), keeping a later one only
        // if it has strictly fewer active requests.
        let c = hosts[balance.int(n)]!;
        const d = hosts[balance.int(n)]!;
        if (d.local[bal]! < c.local[bal]!) c = d;
        return c;
      }
      case 'round-robin': {
        const i = rr[bal]!;
        rr[bal] = i + 1;
        return hosts[i % n]!;
      }
      case 'random':
        return hosts[balance.int(n)]!;
    }
  };
  const arrive = (inputTokens: number, outputTokens: number) => {
    if (hosts.length === 0) return rec.failed();
    const bal = balance.int(E);
    const h = pick(bal);
    const started = now;
    const req = { started };
    try {
      h.engine.submit({
        inputTokens, maxTokens: outputTokens, onToken: () => {},
        onDone: (at) => {
          pending.delete(req);
          h.local[bal]!--;
          inFlight--;
          rec.latency(at - started);
        },
      });
    } catch {
      // Longer than the engine's KV cache holds: refused at once, as vLLM refuses it.
      return rec.failed();
    }
    pending.add(req);
    h.local[bal]!++;
    inFlight++;
  };

  const endMs = s.durationS * 1000;
  const tr = s.traffic;
  if (tr.kind === 'trace') {
    const arrivals = tr.scale === 1 ? tr.arrivals : stackedArrivals(tr.arrivals, tr.scale, tr.shiftS, createRandom(s.seed ^ 0x2545f491));
    let i = 0;
    const next = () => {
      const x = arrivals[i++];
      if (!x || x.t * 1000 >= endMs) return;
      events.push(x.t * 1000, () => {
        arrive(x.inputTokens, x.outputTokens);
        next();
      });
    };
    next();
  } else {
    // Poisson arrivals at rate(t), by thinning under the highest rate.
    let peak = 0;
    for (let t = 0; t <= s.durationS; t += 1) peak = Math.max(peak, rate(t));
    const nextArrival = (from: number) => {
      let t = from;
      for (;;) {
        t += random.exponential(1000 / peak);
        if (t >= endMs) return;
        if (random.next() * peak <= rate(t / 1000)) break;
      }
      events.push(t, () => {
        arrive(drawTokens(s.inputTokens, random), drawTokens(s.outputTokens, random));
        nextArrival(t);
      });
    };
    if (peak > 0) nextArrival(0);
  }

  let nextFlush = 0;
  let nextDecision = scaler ? scaler.intervalS : Infinity;
  const tick = (sec: number) => {
    for (const p of fleet.advance(sec)) addHost(p);
    for (const p of [...fleet.pods]) {
      const h = byPod.get(p);
      if (p.state === 'draining' && h && h.engine.running() + h.engine.waiting() === 0) {
        fleet.remove(p);
        byPod.delete(p);
      }
    }
    rec.gpu(fleet.pods.length, 1, s.engine.gpus);
    if (run.weights === 'load' && hosts.length > 0) {
      weightState = nextWeights(weightState, new Map(hosts.map((h) => [String(h.pod.id), h.engine.running() + h.engine.waiting()])));
      const next = weightState.weights;
      // Published as the controller publishes them: on a change, at most once per WEIGHT_PUBLISH_INTERVAL_MS.
      const changed = sec * 1000 - lastPublished >= WEIGHT_PUBLISH_INTERVAL_MS && hosts.some((h) => next.get(String(h.pod.id)) !== h.weight);
      if (changed) {
        lastPublished = sec * 1000;
        // An EDS update: every Envoy rebuilds its schedule with the new weights.
        for (const h of hosts) {
          h.weight = next.get(String(h.pod.id))!;
          h.due.fill(NaN);
        }
        now0.fill(0);
        weighted = hosts.some((h) => h.weight !== hosts[0]!.weight);
      }
    }
    if (scaler) {
      for (; nextFlush <= sec; nextFlush += s.flushS) scaler.observe({ at: Math.round(nextFlush * 1000), activeRequests: inFlight, envoys: E });
      if (sec >= nextDecision) {
        const d = scaler.decide(sec, fleet.spec(), fleet.count('ready'));
        for (const p of fleet.setDesired(d.replicas, sec)) {
          const h = byPod.get(p);
          if (h) hosts.splice(hosts.indexOf(h), 1);
        }
        nextDecision += scaler.intervalS;
      }
    }
    if (sec + 1 >= s.durationS) for (const r of pending) rec.latency(now - r.started);
    if ((sec + 1) % 60 === 0 || sec + 1 >= s.durationS) {
      rec.endMinute(Math.floor(sec / 60), { desired: fleet.spec(), ready: fleet.count('ready'), pods: fleet.pods.length, scaleEvents: fleet.scaleEvents });
    }
  };
  for (let sec = 0; sec < s.durationS; sec++) events.push(sec * 1000 + 999.999, () => tick(sec));
  while (events.peek() < endMs) {
    now = events.peek();
    events.pop()();
  }
  return rec.result(run.name, run.balancer, scalingLabel(run.scaling));
}

/** Expected requests of a scenario (for refusing per-request runs too large to finish). */
export function expectedRequests(s: Scenario): number {
  const rate = rateFunction(s);
  let n = 0;
  for (let t = 0; t < s.durationS; t++) n += rate(t);
  return n;
}


/**
 * The per-request counterpart of stackedCounts: `scale` copies of the trace (a fractional last copy keeps each
 * request with that probability), each shifted by a uniform offset in [0, shiftS) seconds, wrapping around the
 * trace's length; in time order.
 */
function stackedArrivals(arrivals: readonly Arrival[], scale: number, shiftS: number, random: Random): Arrival[] {
  const length = arrivals[arrivals.length - 1]!.t + 1;
  const out: Arrival[] = [];
  for (let k = 0; k < Math.ceil(scale); k++) {
    const keep = k < Math.floor(scale) ? 1 : scale - Math.floor(scale);
    const shift = random.next() * shiftS;
    for (const a of arrivals) if (keep === 1 || random.next() < keep) out.push({ ...a, t: (a.t + shift) % length });
  }
  return out.sort((x, y) => x.t - y.t);
}
