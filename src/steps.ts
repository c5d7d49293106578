/**
 * Long computations written once, run two ways. A generator `yield`s between units of work (one resource, one
 * slice of services); {@link runSteps} runs it to the end at once (tests, small inputs), {@link runStepsAsync}
 * gives the event loop back whenever a slice of time is used up, so a configuration of thousands of services
 * never stops the xDS streams, the stats sink or the health checks for longer than one slice.
 *
 * Everything that works this way (model rebuilds, snapshot builds, the streams' flushes) shares one budget per
 * turn of the event loop ({@link nextTurn}): several of them running at once still hand the loop back after
 * one slice between them, not one slice each.
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
  /** Clock in ms; injectable so tests decide when a slice is over (the slice is then this call's own). */
  readonly now?: () => number;
}

/**
 * Longest stretch of work between turns of the event loop: well under the 100 ms a large configuration may
 * block at a time, and long enough that the turns themselves cost nothing measurable. A turn still holds the
 * loop longer than this (each other job waiting runs one step, and garbage is collected), and a loaded machine
 * stretches it: with 20 ms, the longest stops of the 5,000-service churn bench were 64–98 ms (median 85);
 * with 10 ms, 41–64 ms (median 52), for the same CPU and delivery times (BENCHMARKS.md).
 */
export const DEFAULT_SLICE_MS = 10;

const clock = performance.now.bind(performance);
let turnStart = clock();
let waiting: (() => void)[] = [];
let turnScheduled = false;
let ioSliceStart: number | undefined;

function scheduleTurn(): void {
  if (turnScheduled) return;
  turnScheduled = true;
  setImmediate(() => {
    turnScheduled = false;
    // Work that I/O callbacks did earlier in this turn of the loop has used the same slice.
    turnStart = ioSliceStart ?? clock();
    ioSliceStart = undefined;
    const ready = waiting;
    waiting = [];
    for (const r of ready) r();
  });
}

/**
 * Resolves at the next turn of the event loop (after I/O has been polled), together with everything else
 * waiting for it. The shared slice of that turn starts with the first I/O callback of the turn that asked
 * {@link ioSliceLeft}, else then: what I/O already did leaves less, but every waiter can still do one unit.
 */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => {
    waiting.push(resolve);
    scheduleTurn();
  });
}

/** Whether the shared slice of this turn (see {@link nextTurn}) is used up. */
export function turnUsed(sliceMs = DEFAULT_SLICE_MS): boolean {
  return clock() - turnStart >= sliceMs;
}

/**
 * Runs `steps` to completion, letting I/O and timers run each time the slice is used up. The part run at
 * once, from the caller, shares the slice of the I/O and timer callbacks of this turn of the loop (see
 * {@link ioSliceLeft}; a small job finishes before the call returns); after each turn, the slice is the
 * turn's shared one. With an injected clock, each part has a slice of its own by that clock. Resolves with
 * the generator's result; rejects with what it throws.
 */
export async function runStepsAsync<T>(steps: Steps<T>, options: SliceOptions = {}): Promise<T> {
  const sliceMs = options.sliceMs ?? DEFAULT_SLICE_MS;
  const now = options.now ?? clock;
  let start = now();
  let shared = false;
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    // A job started by a timer (a debounced rebuild) once had a slice of its own, and the turn after it
    // another: two slices back to back, 60 ms and more on a loaded machine.
    const used = options.now ? now() - start >= sliceMs : shared ? turnUsed(sliceMs) : !ioSliceLeft(sliceMs);
    if (used) {
      await nextTurn();
      start = now();
      shared = true;
    }
  }
}

/**
 * Whether work arriving in I/O callbacks may still run at once in this turn of the event loop: true until
 * `sliceMs` have passed since the first such call of the turn. Requests from many clients arrive in one poll of
 * the loop (a fleet reconnecting); past the slice, the caller queues the rest for later turns (with
 * {@link nextTurn}) rather than handle them all before the loop can breathe.
 */
export function ioSliceLeft(sliceMs = DEFAULT_SLICE_MS): boolean {
  const now = clock();
  if (ioSliceStart === undefined) {
    ioSliceStart = now;
    scheduleTurn();
  }
  return now - ioSliceStart < sliceMs;
}
