/**
 * The latency model of the vLLM simulator: a continuous-batching GPU server, good enough to drive balancers
 * and the scaler in tests and demos. It is a model, not a measurement.
 *
 * - Up to `maxBatch` sequences run at once; later requests wait in a FIFO queue.
 * - An admitted sequence spends `prefillBaseMs + prefillPerTokenMs × inputTokens` before its first token
 *   (prefill overlaps other sequences' decoding, as with chunked prefill).
 * - Then every decode step emits one token for each running sequence; a step lasts
 *   `decodeBaseMs + decodePerSeqMs × running`, so per-token time grows with the batch.
 *
 * Steady state with C concurrent requests (C ≤ maxBatch), N output tokens each:
 * latency ≈ TTFT + N × step(C), throughput ≈ C / latency. Beyond maxBatch, requests queue.
 * Defaults are roughly a 7–8B model on one H100 at ~50 input and ~50 output tokens: about 170 ms for a lone
 * request, about 1,200 requests/s at a full batch of 256.
 */
export interface EngineParams {
  readonly maxBatch: number;
  readonly prefillBaseMs: number;
  readonly prefillPerTokenMs: number;
  readonly decodeBaseMs: number;
  readonly decodePerSeqMs: number;
}

/** See {@link EngineParams}. */
export const DEFAULT_ENGINE: EngineParams = { maxBatch: 256, prefillBaseMs: 15, prefillPerTokenMs: 0.1, decodeBaseMs: 3, decodePerSeqMs: 0.005 };

/**
 * The engine's steady-state latency (ms) of one request while `running` sequences share the batch: prefill,
 * then one decode step per output token, each step as long as the batch makes it. The aggregate simulation
 * (src/simulate/) uses this closed form of the same model; the per-request one runs the engine itself.
 */
export function steadyLatencyMs(p: EngineParams, running: number, inputTokens: number, outputTokens: number): number {
  return p.prefillBaseMs + p.prefillPerTokenMs * inputTokens + outputTokens * (p.decodeBaseMs + p.decodePerSeqMs * running);
}

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
   */
  submit(req: GenerationRequest): () => void;
  running(): number;
  waiting(): number;
}

interface Seq {
  readonly req: GenerationRequest;
  readyAt: number;
  emitted: number;
}

/** Creates an engine on `clock`. Steps run only while there is work. */
export function createEngine(params: EngineParams, clock: EngineClock): Engine {
  const queue: GenerationRequest[] = [];
  const running: Seq[] = [];
  let stepping = false;

  const admit = () => {
    while (running.length < params.maxBatch && queue.length > 0) {
      const req = queue.shift()!;
      running.push({ req, readyAt: clock.now() + params.prefillBaseMs + params.prefillPerTokenMs * req.inputTokens, emitted: 0 });
    }
  };

  const step = () => {
    const now = clock.now();
    for (let i = 0; i < running.length; i++) {
      const s = running[i]!;
      if (s.readyAt > now) continue;
      if (s.emitted === 0) s.req.onFirstToken?.(now);
      s.req.onToken(s.emitted++, now);
      if (s.emitted >= s.req.maxTokens) {
        running.splice(i--, 1);
        s.req.onDone(now);
      }
    }
    admit();
    schedule();
  };

  const schedule = () => {
    if (running.length === 0) {
      stepping = false;
      return;
    }
    stepping = true;
    // Sequences still in prefill do not decode: wait for the earliest one if nothing is decoding yet.
    const now = clock.now();
    const earliest = Math.min(...running.map((s) => s.readyAt));
    const stepMs = params.decodeBaseMs + params.decodePerSeqMs * running.length;
    clock.setTimeout(step, Math.max(stepMs, earliest - now));
  };

  return {
    submit(req) {
      queue.push(req);
      admit();
      if (!stepping) schedule();
      return () => {
        const q = queue.indexOf(req);
        if (q >= 0) queue.splice(q, 1);
        const r = running.findIndex((s) => s.req === req);
        if (r >= 0) {
          running.splice(r, 1);
          admit();
        }
      };
    },
    running: () => running.length,
    waiting: () => queue.length,
  };
}
