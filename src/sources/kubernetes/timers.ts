/** Time, injectable so that backoff and debounce are testable without waiting. */
export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The real clock. */
export const realTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/**
 * Coalesces bursts: `poke()` schedules `fire` after `holdOffMs` of quiet, but never later than `maxDelayMs`
 * after the first poke of a burst (Contour's hold-off and maximum delay), so a steady trickle of events
 * cannot postpone an update forever.
 */
export function createDebouncer(o: { holdOffMs: number; maxDelayMs: number; timers: Timers; fire: () => void }): { poke(): void; cancel(): void } {
  let timer: unknown;
  let firstAt: number | undefined;
  const fire = () => {
    timer = undefined;
    firstAt = undefined;
    o.fire();
  };
  return {
    poke() {
      const now = o.timers.now();
      firstAt ??= now;
      if (timer !== undefined) o.timers.clearTimeout(timer);
      timer = o.timers.setTimeout(fire, Math.max(0, Math.min(o.holdOffMs, o.maxDelayMs - (now - firstAt))));
    },
    cancel() {
      if (timer !== undefined) o.timers.clearTimeout(timer);
      timer = firstAt = undefined;
    },
  };
}

/** Capped exponential backoff: `initialMs × 2^attempt`, at most `maxMs`. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number): number {
  return Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
}
