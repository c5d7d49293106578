/**
 * Load-aware endpoint weights: what the control plane gives Envoy's least-request balancer when each Envoy sees
 * only its own requests (sidecars). A pure function of the previous state and the pods' own load (vLLM's
 * running + waiting requests: the pod's count across every Envoy); the simulator calls it exactly as a server
 * does. Design and reasons: docs/balancing.md.
 *
 * - Each pod's load is smoothed (an exponential average), and compared with the fleet's mean.
 * - Within `deadBand` (or `minGap` requests) of the mean a weight holds, or, for a pod below the full weight
 *   whose load is at or under the mean, moves back toward it: healthy pods share one weight, so Envoy keeps its
 *   two choices, and a pod that recovers returns to it.
 * - Beyond it, a pod above the mean is sent less at once (by (mean / load)^`gainDown`, at most ÷`maxDown` per
 *   update), one below it more, slowly (×`maxUp` per update): an idle-looking pod draws a little more each
 *   update, never a herd.
 * - A pod whose load is unknown (no answer, garbage) is treated as average: its weight moves to the mean.
 * - Weights only ever take share away from pods that cannot carry it: they are scaled so that the heaviest
 *   weight is the mean weight (healthy pods have it, and a pod that recovers returns to it, never above),
 *   bounded below by mean / `spread` (no pod starved), and quantized to a geometric grid (steps of `quantum`),
 *   so that noise below a step changes nothing Envoy sees.
 */

/** Tunables of {@link nextWeights}. */
export interface WeightOptions {
  /** Weight of the newest sample in the smoothed load (0–1]. */
  readonly smoothing: number;
  /** Loads within this share of the mean (either way) do not move a weight away from the mean weight. */
  readonly deadBand: number;
  /**
   * Nor do loads within this many requests of the mean, whatever the share: a few requests in flight swing by
   * their own number from one second to the next, and at such loads nothing needs balancing.
   */
  readonly minGap: number;
  /** Exponent of the step down for a pod above the band: (mean / load)^gainDown. */
  readonly gainDown: number;
  /** Largest factor one update lowers a weight by. */
  readonly maxDown: number;
  /** Factor one update raises the weight of a pod lighter than the band by (up to the mean weight): small, so no herd forms. */
  readonly maxUp: number;
  /** Weights stay within mean / spread … mean. */
  readonly spread: number;
  /** Relative size of one step of the weight grid. */
  readonly quantum: number;
  /** The weight of a healthy pod, the highest (Envoy weights are whole numbers ≥ 1; large, so rounding is fine). */
  readonly mean: number;
}

/** Defaults of {@link WeightOptions}, as measured in docs/balancing.md. */
export const DEFAULT_WEIGHT_OPTIONS: WeightOptions = { smoothing: 0.3, deadBand: 0.3, minGap: 4, gainDown: 0.5, maxDown: 2, maxUp: 1.1, spread: 10, quantum: 0.1, mean: 1000 };

/**
 * The least time between two publications of weights (they are recomputed every second; changes wait, and go
 * out together, this long after the last publication): each publication sends the changed assignments to every
 * Envoy, which at 10,000 Envoys is the control plane's main cost (BENCHMARKS.md, "Sidecars").
 */
export const WEIGHT_PUBLISH_INTERVAL_MS = 5_000;

/** What one update carries to the next. */
export interface WeightState {
  /** Each pod's weight as last published. */
  readonly weights: ReadonlyMap<string, number>;
  /** Each pod's smoothed load (pods whose load is unknown are absent). */
  readonly smoothed: ReadonlyMap<string, number>;
  /** The mean of the smoothed loads this update compared each pod with. */
  readonly meanLoad: number;
  /** Why each pod's weight moved or held this update, in words (for `inferplane status explain`). */
  readonly why: ReadonlyMap<string, string>;
}

/** The state before any update: no pod weighed yet. */
export const NO_WEIGHTS: WeightState = { weights: new Map(), smoothed: new Map(), meanLoad: 0, why: new Map() };

/** The weight on the grid nearest to `w`: mean × (1 + quantum)^k for a whole k. */
function quantize(w: number, o: WeightOptions): number {
  const k = Math.round(Math.log(w / o.mean) / Math.log(1 + o.quantum));
  return Math.max(1, Math.round(o.mean * (1 + o.quantum) ** k));
}

const usable = (l: number | null | undefined): l is number => l !== null && l !== undefined && Number.isFinite(l) && l >= 0;

/**
 * The next weight of every pod in `loads` (pods absent from it are gone; new ones start at the mean weight).
 * `loads` maps a pod to its requests in flight as it counts them itself, or null where that is unknown.
 */
export function nextWeights(prev: WeightState, loads: ReadonlyMap<string, number | null>, o: WeightOptions = DEFAULT_WEIGHT_OPTIONS): WeightState {
  const smoothed = new Map<string, number>();
  for (const [pod, load] of loads) {
    if (!usable(load)) continue;
    const before = prev.smoothed.get(pod);
    smoothed.set(pod, before === undefined ? load : before + o.smoothing * (load - before));
  }
  const known = [...smoothed.values()];
  const meanLoad = known.length > 0 ? known.reduce((a, b) => a + b, 0) / known.length : 0;
  const toward = (w: number) => w * Math.min(o.maxUp, Math.max(1 / o.maxDown, o.mean / w));
  const raw = new Map<string, number>();
  const why = new Map<string, string>();
  const band = `${Math.round(o.deadBand * 100)}%`;
  for (const pod of loads.keys()) {
    const w = prev.weights.get(pod) ?? o.mean;
    const load = smoothed.get(pod);
    if (load === undefined) {
      raw.set(pod, toward(w));
      why.set(pod, 'its load is unknown: treated as average (the mean weight)');
      continue;
    }
    const ratio = Math.abs(load - meanLoad) <= o.minGap ? 1 : (meanLoad + 1) / (load + 1);
    const loadText = `load ${load.toFixed(1)} against the mean ${meanLoad.toFixed(1)}`;
    if (ratio <= 1 / (1 + o.deadBand)) {
      raw.set(pod, w * Math.max(1 / o.maxDown, ratio ** o.gainDown));
      why.set(pod, `${loadText}: more than ${band} above, sent less`);
    } else if (ratio >= 1 + o.deadBand) {
      raw.set(pod, Math.min(o.mean, w * o.maxUp));
      why.set(pod, w >= o.mean ? `${loadText}: more than ${band} below, at the full weight already` : `${loadText}: more than ${band} below, sent a little more`);
    } else if (w < o.mean && load <= meanLoad) {
      // Within the band: back toward the mean weight only where the load agrees, else hold.
      raw.set(pod, toward(w));
      why.set(pod, `${loadText}: within ${band}, back toward the mean weight`);
    } else {
      raw.set(pod, w);
      why.set(pod, `${loadText}: within ${band}, held`);
    }
  }
  const top = Math.max(...raw.values());
  const weights = new Map<string, number>();
  for (const [pod, w] of raw) weights.set(pod, quantize(Math.min(o.mean, Math.max(o.mean / o.spread, (w * o.mean) / top)), o));
  return { weights, smoothed, meanLoad, why };
}
