import type { Random } from './random.js';
import type { ColdStart, Scenario } from './scenario.js';

/** A simulated model-server pod. Times are seconds of simulated time. */
export interface Pod {
  readonly id: number;
  state: 'starting' | 'ready' | 'draining';
  readonly createdAtS: number;
  readonly readyAtS: number;
}

/**
 * How much slower than nominal pod `id` is at `tS`: the scenario's slow pods always, its noisy neighbours
 * during their busy part of each period (each pod's period offset differs, so they do not all flare at once).
 */
export function podSpeed(s: Scenario, id: number, tS: number): number {
  let f = 1;
  if (s.slowPods && id % s.slowPods.oneIn === s.slowPods.oneIn - 1) f *= s.slowPods.factor;
  const n = s.noisyPods;
  if (n && (id + Math.floor(n.oneIn / 2)) % n.oneIn === 0 && (tS + id * 37) % n.periodS < n.busyS) f *= n.factor;
  return f;
}

/** A part of a cold start that is zero unless given: drawn only then, so scenarios without it keep their draws. */
function part(random: Random, [lo, hi]: readonly [number, number]): number {
  return hi > 0 ? random.uniform(lo, hi) : 0;
}

/**
 * The Deployment and its pods: new pods start after a cold start drawn from the scenario (a node if needed, the
 * image pull, the weight load, the engine's warm-up); a lower count removes pods that are still starting first (newest first), then ready ones (newest
 * first), which drain: off the balancers at once, gone once their requests finish. With `instant`, pods are
 * ready at once and leave at once (the oracle).
 */
export class Fleet {
  private nextId = 0;
  private desired = 0;
  readonly pods: Pod[] = [];
  /** Replica count changes asked for, for the report. */
  scaleEvents = 0;

  constructor(private readonly scenario: Scenario, private readonly random: Random, private readonly instant = false, private readonly coldStart: ColdStart = scenario.coldStart) {}

  /** Starts with `n` pods ready. */
  seed(n: number, nowS: number): void {
    this.desired = n;
    for (let i = 0; i < n; i++) this.pods.push({ id: this.nextId++, state: 'ready', createdAtS: nowS, readyAtS: nowS });
  }

  spec(): number {
    return this.desired;
  }

  /** Sets spec.replicas; returns the pods that began draining (their owner finishes their requests). */
  setDesired(n: number, nowS: number): Pod[] {
    if (n === this.desired) return [];
    this.scaleEvents++;
    this.desired = n;
    const live = this.pods.filter((p) => p.state !== 'draining');
    const drained: Pod[] = [];
    if (n > live.length) {
      const c = this.coldStart;
      for (let i = live.length; i < n; i++) {
        const cold = this.instant ? 0 : this.random.uniform(c.pullS[0], c.pullS[1]) + this.random.uniform(c.loadS[0], c.loadS[1]) + part(this.random, c.nodeS) + part(this.random, c.warmupS);
        this.pods.push({ id: this.nextId++, state: this.instant ? 'ready' : 'starting', createdAtS: nowS, readyAtS: nowS + cold });
      }
    } else {
      // The oracle keeps its oldest pods, so that its sizing (oldest first) holds.
      const order = [...live.filter((p) => p.state === 'starting').reverse(), ...live.filter((p) => p.state === 'ready').reverse()];
      for (const p of order.slice(0, live.length - n)) {
        if (p.state === 'starting' || this.instant) this.remove(p);
        else {
          p.state = 'draining';
          drained.push(p);
        }
      }
    }
    return drained;
  }

  /** Pods whose cold start ends by `nowS` become ready; returns them. */
  advance(nowS: number): Pod[] {
    const became: Pod[] = [];
    for (const p of this.pods) {
      if (p.state === 'starting' && p.readyAtS <= nowS) {
        p.state = 'ready';
        became.push(p);
      }
    }
    return became;
  }

  /** A drained pod leaves. */
  remove(p: Pod): void {
    const i = this.pods.indexOf(p);
    if (i >= 0) this.pods.splice(i, 1);
  }

  ready(): Pod[] {
    return this.pods.filter((p) => p.state === 'ready');
  }

  count(state: Pod['state']): number {
    let n = 0;
    for (const p of this.pods) if (p.state === state) n++;
    return n;
  }
}
