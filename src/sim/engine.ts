import { checkEngineSpec, DEFAULT_PRESET, ENGINE_PRESETS, engineFigures, stepMs, type EngineSpec } from './hardware.js';

/**
 * The vLLM simulator's engine: continuous batching with chunked prefill, its step times from the hardware model
 * (hardware.ts). It is a model, not a measurement; BENCHMARKS.md ("The engine model") compares it with
 * published ones.
 *
 * - A request is admitted when the batch has fewer than `maxNumSeqs` sequences and the KV cache can hold its
 *   prompt and all its output tokens (reserved on admission, so nothing is ever preempted); otherwise it waits
 *   in a FIFO queue.
 * - Each step decodes one token for every sequence whose prompt is done, and spends what is left of the
 *   `maxBatchedTokens` budget on prompt chunks, oldest first. The step that finishes a prompt gives its first
 *   token.
 * - A step lasts what the hardware model says for its work (tokens, KV read, attention), × `slowdown`.
 */
export interface EngineParams {
  readonly spec: EngineSpec;
  /** ≥ 1: a slow or noisy pod runs every step this many times longer. Read at each step. */
  readonly slowdown: number;
}

/** The default engine: {@link DEFAULT_PRESET} at full speed. */
export const DEFAULT_ENGINE: EngineParams = { spec: ENGINE_PRESETS[DEFAULT_PRESET]!, slowdown: 1 };

/** The clock the engine runs on (real in the server, virtual in tests). */
export interface EngineClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
}

/** One generation request. Callbacks run on the engine's clock. */
export interface GenerationRequest {
  readonly inputTokens: number;
  readonly maxTokens: number;
  onFirstToken?(at: number): void;
  onToken(index: number, at: number): void;
  onDone(at: number): void;
}

/** A running engine. */
export interface Engine {
  /**
   * Queues a request. The returned function aborts it (the client went away, as vLLM aborts a request whose
   * connection closes): it leaves the queue or the batch at once, and no callback of it runs again.
   * Throws a RangeError for a request the KV cache could never hold (vLLM refuses one longer than its context).
   */
  submit(req: GenerationRequest): () => void;
  running(): number;
  waiting(): number;
  /** Share of the KV cache reserved by the batch, 0–1. */
  kvUsage(): number;
}

interface Seq {
  readonly req: GenerationRequest;
  prefilled: number;
  emitted: number;
  readonly reserved: number;
  gone: boolean;
}

/** Creates an engine on `clock`. Steps run only while there is work. Throws on a spec the hardware model refuses. */
export function createEngine(params: EngineParams, clock: EngineClock): Engine {
  const problems = checkEngineSpec(params.spec);
  if (problems.length > 0) throw new RangeError(`engine ${params.spec.name}: ${problems.map((p) => `${p.path.join('.')}: ${p.message}`).join('; ')}`);
  const spec = params.spec;
  const figures = engineFigures(spec);
  const queue: Seq[] = [];
  const running: Seq[] = [];
  let reserved = 0;
  let stepping = false;

  const admit = () => {
    while (queue.length > 0 && running.length < spec.maxNumSeqs && reserved + queue[0]!.reserved <= figures.kvTokens) {
      const s = queue.shift()!;
      reserved += s.reserved;
      running.push(s);
    }
  };

  const finish = (s: Seq) => {
    s.gone = true;
    reserved -= s.reserved;
    running.splice(running.indexOf(s), 1);
  };

  const schedule = () => {
    if (running.length === 0) {
      stepping = false;
      return;
    }
    stepping = true;
    // Plan the step: decodes first, then prompt chunks in admission order within the token budget.
    const decoding: Seq[] = [];
    const chunks: [Seq, number][] = [];
    let tokens = 0;
    let kvRead = 0;
    let attended = 0;
    for (const s of running) {
      if (s.prefilled < s.req.inputTokens) continue;
      decoding.push(s);
      const context = s.req.inputTokens + s.emitted;
      tokens++;
      kvRead += context;
      attended += context;
    }
    let budget = spec.maxBatchedTokens - tokens;
    for (const s of running) {
      if (budget <= 0) break;
      if (s.prefilled >= s.req.inputTokens) continue;
      const n = Math.min(budget, s.req.inputTokens - s.prefilled);
      chunks.push([s, n]);
      budget -= n;
      tokens += n;
      kvRead += s.prefilled;
      attended += n * (s.prefilled + n / 2);
    }
    const ms = stepMs(spec, figures, { tokens, kvRead, attended }) * Math.max(1, params.slowdown);
    clock.setTimeout(() => {
      const now = clock.now();
      for (const [s, n] of chunks) {
        if (s.gone) continue;
        s.prefilled += n;
        if (s.prefilled >= s.req.inputTokens) emit(s, now, true);
      }
      for (const s of decoding) if (!s.gone) emit(s, now, false);
      admit();
      schedule();
    }, ms);
  };

  const emit = (s: Seq, now: number, first: boolean) => {
    if (first) s.req.onFirstToken?.(now);
    s.req.onToken(s.emitted++, now);
    if (s.gone) return; // a callback aborted it
    if (s.emitted >= s.req.maxTokens) {
      finish(s);
      s.req.onDone(now);
    }
  };

  return {
    submit(req) {
      const need = req.inputTokens + req.maxTokens;
      if (need > figures.kvTokens) throw new RangeError(`a request of ${req.inputTokens} prompt and ${req.maxTokens} output tokens needs ${need} tokens of KV cache; this engine holds ${figures.kvTokens}`);
      const s: Seq = { req, prefilled: 0, emitted: 0, reserved: need, gone: false };
      queue.push(s);
      admit();
      if (!stepping) schedule();
      return () => {
        if (s.gone) return;
        const q = queue.indexOf(s);
        if (q >= 0) {
          queue.splice(q, 1);
          s.gone = true;
          return;
        }
        finish(s);
        admit();
      };
    },
    running: () => running.length,
    waiting: () => queue.length,
    kvUsage: () => reserved / figures.kvTokens,
  };
}
