/**
 * Long computations written once, run two ways. A generator `yield`s between units of work (one resource, one
 * slice of services); {@link runSteps} runs it to the end at once (tests, small inputs), {@link runStepsAsync}
 * gives the event loop back whenever a slice of time is used up, so a configuration of thousands of services
 * never stops the xDS streams, the stats sink or the health checks for longer than one slice.
 */
export type Steps<T> = Generator<void, T, void>;

/** Runs `steps` to completion without yielding to the event loop. */
export function runSteps<T>(steps: Steps<T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** Options of {@link runStepsAsync}. */
export interface SliceOptions {
  /** Longest run of work between two turns of the event loop, in ms (default {@link DEFAULT_SLICE_MS}). */
  readonly sliceMs?: number;
  /** Clock in ms; injectable so tests decide when a slice is over. */
  readonly now?: () => number;
}

/**
 * Longest stretch of work between turns of the event loop: well under the 100 ms a large configuration may
 * block at a time, and long enough that the turns themselves cost nothing measurable.
 */
export const DEFAULT_SLICE_MS = 20;

/**
 * Runs `steps` to completion, letting I/O and timers run (a `setImmediate` turn) each time `sliceMs` has
 * passed since the last turn. Resolves with the generator's result; rejects with what it throws.
 */
export async function runStepsAsync<T>(steps: Steps<T>, options: SliceOptions = {}): Promise<T> {
  const sliceMs = options.sliceMs ?? DEFAULT_SLICE_MS;
  const now = options.now ?? performance.now.bind(performance);
  let start = now();
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    if (now() - start >= sliceMs) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      start = now();
    }
  }
}
