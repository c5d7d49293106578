import v8 from 'node:v8';
import vm from 'node:vm';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

/** Options of {@link startMemoryRelease}. */
export interface MemoryReleaseOptions {
  /** What holds memory, e.g. open streams: a release follows a large, settled drop of it. */
  readonly load: () => number;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** How far below its peak `load` must fall to be worth a release (default 100). */
  readonly minDrop?: number;
  /** How long `load` must stay unchanged after the drop (default 5 s): a fleet reconnecting is not a fleet gone. */
  readonly quietMs?: number;
  /** How often `load` is looked at (default 1 s); 0 leaves it to {@link MemoryRelease.check}. */
  readonly everyMs?: number;
  /** A full garbage collection; default V8's own (see {@link fullGc}). */
  readonly gc?: () => void;
  readonly now?: () => number;
}

/** A running {@link startMemoryRelease}. */
export interface MemoryRelease {
  /** Looks at `load` once (the timer does this every `everyMs`). */
  check(): void;
  stop(): void;
}

/**
 * A full garbage collection that also compacts the heap, so the pages it empties go back to the system, made
 * callable without starting Node with `--expose-gc` (the flag only adds the function to contexts created
 * afterwards). A plain full collection leaves live objects scattered over the old pages and the heap at its
 * peak size (measured after 10,000 streams left: 142 MiB of old space kept for 31 MiB in use); compaction is
 * switched on for this collection only. Undefined if this V8 refuses.
 */
export function fullGc(): (() => void) | undefined {
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc: unknown = (globalThis as { gc?: unknown }).gc ?? vm.runInNewContext('gc');
    if (typeof gc !== 'function') return undefined;
    return () => {
      v8.setFlagsFromString('--compact-on-every-full-gc');
      try {
        gc();
      } finally {
        v8.setFlagsFromString('--no-compact-on-every-full-gc');
      }
    };
  } catch {
    return undefined;
  }
}

/**
 * Gives memory back after many streams leave. Thousands of closed connections leave their garbage in the heap
 * of a process that has gone quiet, and a quiet process allocates too little to start a collection: V8 then
 * keeps the heap for minutes (measured: 120 MiB of garbage held 50 s after 2,000 streams left). Once `load` has
 * fallen by `minDrop` from its peak and stayed put for `quietMs`, one full collection runs (tens of
 * milliseconds), freeing the heap and the native buffers its objects held; it is logged and counted.
 */
export function startMemoryRelease(o: MemoryReleaseOptions): MemoryRelease {
  const now = o.now ?? Date.now;
  const minDrop = o.minDrop ?? 100;
  const quietMs = o.quietMs ?? 5_000;
  const gc = o.gc ?? fullGc();
  const releases = o.metrics.counter('inferplane_memory_releases_total', 'Full garbage collections run after streams left');
  let peak = o.load();
  let last = peak;
  let changedAt = now();
  const check = () => {
    const n = o.load();
    if (n !== last) {
      last = n;
      changedAt = now();
    }
    if (n > peak) peak = n;
    if (!gc || peak - n < minDrop || now() - changedAt < quietMs) return;
    const before = process.memoryUsage();
    const started = performance.now();
    gc();
    const after = process.memoryUsage();
    releases.inc();
    o.log.info('streams left: memory released', {
      streamsBefore: peak, streams: n, ms: Math.round(performance.now() - started),
      heapUsedMiB: [before.heapUsed, after.heapUsed].map((b) => Math.round(b / 2 ** 20)), rssMiB: [before.rss, after.rss].map((b) => Math.round(b / 2 ** 20)),
    });
    peak = n;
  };
  const timer = (o.everyMs ?? 1_000) > 0 ? setInterval(check, o.everyMs ?? 1_000).unref() : undefined;
  return { check, stop: () => clearInterval(timer) };
}
