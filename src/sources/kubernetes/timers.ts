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
 * cannot postpone an update forever. A poke only notes its time: one timer per burst, set again when it goes
 * off early. A first list of 5,000 objects pokes 5,000 times in one piece of work, and a timer cleared and set
 * per poke made that piece longer.
 */
export function createDebouncer(o: { holdOffMs: number; maxDelayMs: number; timers: Timers; fire: () => void }): { poke(): void; cancel(): void } {
  let timer: unknown;
  let firstAt = 0;
  let lastAt = 0;
  const due = () => Math.min(lastAt + o.holdOffMs, firstAt + o.maxDelayMs);
  const check = () => {
    const wait = due() - o.timers.now();
    if (wait > 0) {
      timer = o.timers.setTimeout(check, wait);
      return;
    }
    timer = undefined;
    o.fire();
  };
  return {
    poke() {
      lastAt = o.timers.now();
      if (timer !== undefined) return;
      firstAt = lastAt;
      timer = o.timers.setTimeout(check, Math.max(0, due() - lastAt));
    },
    cancel() {
      if (timer !== undefined) o.timers.clearTimeout(timer);
      timer = undefined;
    },
  };
}

/** Capped exponential backoff: `initialMs × 2^attempt`, at most `maxMs`. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number): number {
  return Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
}
