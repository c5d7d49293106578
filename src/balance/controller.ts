import type { Logger } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import type { PodScrape } from '../scaler/queue.js';
import type { Timers } from '../sources/kubernetes/timers.js';
import { endpointKey } from '../model/model.js';
import { nextWeights, NO_WEIGHTS, WEIGHT_PUBLISH_INTERVAL_MS, type WeightState } from './weights.js';

/** A pod's load above this is not a plausible count of requests in flight on one model server. */
export const MAX_PLAUSIBLE_LOAD = 100_000;

/** Options of {@link createWeightController}. */
export interface WeightControllerOptions {
  /** Reads a service's pods' /metrics (queue.ts). */
  readonly scrape: PodScrape;
  /** The served services that ask for load-aware weights, now. */
  readonly services: () => readonly string[];
  /** Called with the services whose weights changed and their new weights (by {@link endpointKey}), together. */
  readonly onWeights: (changed: ReadonlyMap<string, ReadonlyMap<string, number>>) => void;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly timers: Timers;
  /** How often weights are recomputed. Default 1 s. */
  readonly intervalMs?: number;
  /** The least time between two publications of weights (of any services). Default {@link WEIGHT_PUBLISH_INTERVAL_MS}. */
  readonly publishIntervalMs?: number;
}

/** Why one endpoint has its weight. */
export interface EndpointWeight {
  /** The endpoint as {@link endpointKey} names it: `address:port`. */
  readonly endpoint: string;
  readonly weight: number;
  /** The pod's requests in flight as it last reported them; null when unreadable. */
  readonly load: number | null;
  /** Why the weight is what it is, in words. */
  readonly why: string;
}

/** The controller's view of one service, for the admin port and `inferplane status explain`. */
export interface ServiceWeights {
  readonly updatedAt: string;
  readonly meanLoad: number;
  readonly endpoints: readonly EndpointWeight[];
}

/** Load-aware weights of every service that asks for them; see {@link createWeightController}. */
export interface WeightController {
  start(): void;
  stop(): void;
  /** One round now (the timer calls it; tests too). */
  tick(): Promise<void>;
  /** The weights published for a service, if any. */
  weights(service: string): ReadonlyMap<string, number> | undefined;
  /** Every weighed service with each endpoint's weight and why. */
  status(): Readonly<Record<string, ServiceWeights>>;
}

/**
 * Every `intervalMs`, for each service with load-aware weights: reads its pods' own load (running + waiting),
 * computes the next weights ({@link nextWeights}) and hands the changed services' weights to `onWeights`
 * together, at most once per `publishIntervalMs` (the caller publishes them through the EDS fast path). A pod whose load cannot be read (no answer, an error, garbage, an
 * absurd count) is treated as average; the problem is logged once per pod until it reads again, and counted
 * (`inferplane_weights_unreadable_total{service,reason}`). A service that stops asking is forgotten.
 */
export function createWeightController(o: WeightControllerOptions): WeightController {
  const intervalMs = o.intervalMs ?? 1_000;
  const publishIntervalMs = o.publishIntervalMs ?? WEIGHT_PUBLISH_INTERVAL_MS;
  let publishedAt = -Infinity;
  const pending = new Map<string, ReadonlyMap<string, number>>();
  const state = new Map<string, WeightState>();
  const published = new Map<string, ReadonlyMap<string, number>>();
  const views = new Map<string, ServiceWeights>();
  const reported = new Map<string, string>(); // `${service} ${address}` → the problem already logged
  const unreadable = o.metrics.counter('inferplane_weights_unreadable_total', 'Pod loads that could not be read for load-aware weights (the pod kept an average weight), by service and reason', ['service', 'reason']);
  const updates = o.metrics.counter('inferplane_weights_updates_total', 'Load-aware weight changes published, by service', ['service']);
  let timer: ReturnType<Timers['setTimeout']> | undefined;
  let running = false;

  async function round(service: string): Promise<void> {
    const { pods } = await o.scrape(service);
    const loads = new Map<string, number | null>();
    for (const p of pods) {
      const id = endpointKey(p.address, p.port);
      const load = p.work ? p.work.running + p.work.waiting : null;
      const problem = p.problem ?? (load !== null && load > MAX_PLAUSIBLE_LOAD ? { kind: 'absurd' as const, text: `an absurd load of ${load} requests` } : undefined);
      const key = `${service} ${id}`;
      if (problem !== undefined) {
        unreadable.inc({ service, reason: problem.kind });
        if (reported.get(key) !== problem.text) o.log.warn('a pod\'s load cannot be read; it is weighed as average', { service, pod: id, problem: problem.text });
        reported.set(key, problem.text);
        loads.set(id, null);
        continue;
      }
      if (reported.delete(key)) o.log.info('a pod\'s load reads again', { service, pod: id });
      loads.set(id, load);
    }
    const next = nextWeights(state.get(service) ?? NO_WEIGHTS, loads);
    state.set(service, next);
    views.set(service, {
      updatedAt: new Date(o.timers.now()).toISOString(),
      meanLoad: next.meanLoad,
      endpoints: [...next.weights].map(([endpoint, weight]) => ({ endpoint, weight, load: loads.get(endpoint) ?? null, why: next.why.get(endpoint) ?? '' })),
    });
    const before = published.get(service);
    const changed = !before || before.size !== next.weights.size || [...next.weights].some(([a, w]) => before.get(a) !== w);
    if (changed && pods.length > 0) pending.set(service, next.weights);
    else pending.delete(service);
  }

  /**
   * Hands every pending change over in one publication, at most once per interval: each publication sends the
   * changed assignments to every Envoy, and its cost is per Envoy, not per service. A service seen for the first
   * time goes out at once (its endpoints have no weights yet). Changes that wait may settle meanwhile, so
   * Envoys get fewer, steadier updates.
   */
  function flush(): void {
    if (pending.size === 0) return;
    const now = o.timers.now();
    const fresh = [...pending.keys()].some((s) => !published.has(s));
    if (!fresh && now - publishedAt < publishIntervalMs) return;
    publishedAt = now;
    const out = new Map(pending);
    pending.clear();
    for (const [service, w] of out) {
      published.set(service, w);
      updates.inc({ service });
    }
    o.onWeights(out);
  }

  async function tick(): Promise<void> {
    if (running) return;
    running = true;
    try {
      const wanted = new Set(o.services());
      for (const s of [...state.keys()]) {
        if (wanted.has(s)) continue;
        state.delete(s);
        published.delete(s);
        views.delete(s);
        for (const k of [...reported.keys()]) if (k.startsWith(`${s} `)) reported.delete(k);
      }
      for (const s of [...pending.keys()]) if (!wanted.has(s)) pending.delete(s);
      await Promise.all([...wanted].map((s) => round(s).catch((e: unknown) => o.log.error('load-aware weights: a round failed; the last weights stay', { service: s, error: e instanceof Error ? e.message : String(e) }))));
      flush();
    } finally {
      running = false;
    }
  }

  const schedule = () => {
    timer = o.timers.setTimeout(() => void tick().finally(() => timer !== undefined && schedule()), intervalMs);
  };
  return {
    start() {
      if (timer === undefined) schedule();
    },
    stop() {
      if (timer !== undefined) o.timers.clearTimeout(timer);
      timer = undefined;
    },
    tick,
    weights: (service) => published.get(service),
    status: () => Object.fromEntries([...views].sort(([a], [b]) => (a < b ? -1 : 1))),
  };
}
