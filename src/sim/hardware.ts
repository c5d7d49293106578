/**
 * The engine model derived from the hardware: how long one step of a continuous-batching engine (vLLM with
 * chunked prefill) takes on a given GPU for a given model, from public specifications and two efficiencies.
 *
 * A step runs every sequence in the batch for one token (decode) plus a chunk of prompt tokens (prefill). It
 * reads every weight once and the KV cache of every token attended to, and does about 2 FLOP per parameter per
 * token plus attention. Its time is the larger of the two, each at a share of the peak:
 *
 *   step = max(bytes / (bandwidth × bandwidthEfficiency), FLOP / (peak × computeEfficiency)) + stepOverheadMs
 *
 * with bandwidth and peak summed over the pod's GPUs and scaled by `parallelEfficiency` when there are several
 * (tensor parallelism). Efficiencies are at most 1 and the overhead is not negative, so no step is ever faster
 * than the memory-bandwidth floor or the FLOP/s peak allow. The batch is bounded by `maxNumSeqs` and by the KV
 * cache: the memory left after the weights, at `gpuMemoryUtilization`, holds `kvTokens` tokens.
 * Constants and where they come from: BENCHMARKS.md, "The engine model".
 */

/** Precision of the weights or the KV cache. */
export type Precision = 'bf16' | 'fp8';

/** A GPU's public specifications (dense figures: the sparse ones are twice these and do not apply). */
export interface GpuSpec {
  readonly name: string;
  /** HBM capacity, bytes. */
  readonly memoryBytes: number;
  /** HBM bandwidth, bytes/s. */
  readonly bandwidth: number;
  /** Dense BF16 tensor FLOP/s. */
  readonly flopsBf16: number;
  /** Dense FP8 tensor FLOP/s; null where the GPU has none (FP8 weights then compute at the BF16 rate). */
  readonly flopsFp8: number | null;
  readonly source: string;
}

/** A decoder-only transformer's shape (from its config.json). */
export interface ModelSpec {
  readonly name: string;
  readonly params: number;
  readonly layers: number;
  /** Hidden size = attention heads × head dimension. */
  readonly hidden: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly source: string;
}

/** One pod's engine: a model on one or more GPUs, and the engine's own limits. */
export interface EngineSpec {
  readonly name: string;
  readonly model: ModelSpec;
  readonly gpu: GpuSpec;
  /** GPUs per pod (tensor parallel). */
  readonly gpus: number;
  readonly weights: Precision;
  readonly kvCache: Precision;
  /** Share of peak HBM bandwidth a step reaches. */
  readonly bandwidthEfficiency: number;
  /** Share of dense peak FLOP/s a step's matrix products reach. */
  readonly computeEfficiency: number;
  /** Share of `gpus`× one GPU that tensor parallelism keeps (all-reduces); 1 on one GPU. */
  readonly parallelEfficiency: number;
  /** Work per step the GPU does not hide (scheduling, sampling), ms. */
  readonly stepOverheadMs: number;
  /** vLLM's max_num_seqs: sequences in the batch at most. */
  readonly maxNumSeqs: number;
  /** vLLM's max_num_batched_tokens: tokens per step (decode tokens first, prompt chunks in the rest). */
  readonly maxBatchedTokens: number;
  /** vLLM's gpu_memory_utilization: the share of HBM the engine takes for weights and KV cache. */
  readonly gpuMemoryUtilization: number;
}

/** GPUs by name. Figures from NVIDIA's datasheets (dense, SXM unless named). */
export const GPUS: Readonly<Record<string, GpuSpec>> = {
  'h100-sxm': { name: 'h100-sxm', memoryBytes: 80e9, bandwidth: 3.35e12, flopsBf16: 989e12, flopsFp8: 1979e12, source: 'NVIDIA H100 Tensor Core GPU datasheet (H100 SXM column)' },
  'h100-pcie': { name: 'h100-pcie', memoryBytes: 80e9, bandwidth: 2.0e12, flopsBf16: 756e12, flopsFp8: 1513e12, source: 'NVIDIA H100 Tensor Core GPU datasheet (H100 PCIe column)' },
  h200: { name: 'h200', memoryBytes: 141e9, bandwidth: 4.8e12, flopsBf16: 989e12, flopsFp8: 1979e12, source: 'NVIDIA H200 Tensor Core GPU datasheet (SXM column)' },
  'a100-sxm-80gb': { name: 'a100-sxm-80gb', memoryBytes: 80e9, bandwidth: 2.039e12, flopsBf16: 312e12, flopsFp8: null, source: 'NVIDIA A100 Tensor Core GPU datasheet (80GB SXM column)' },
  'a100-sxm-40gb': { name: 'a100-sxm-40gb', memoryBytes: 40e9, bandwidth: 1.555e12, flopsBf16: 312e12, flopsFp8: null, source: 'NVIDIA A100 Tensor Core GPU datasheet (40GB SXM column)' },
};

/** Models by name. Shapes from each model's config.json on Hugging Face; parameter counts from its model card. */
export const MODELS: Readonly<Record<string, ModelSpec>> = {
  'llama-3.1-8b': { name: 'llama-3.1-8b', params: 8.03e9, layers: 32, hidden: 4096, kvHeads: 8, headDim: 128, source: 'meta-llama/Llama-3.1-8B config.json and model card' },
  'llama-3.1-70b': { name: 'llama-3.1-70b', params: 70.6e9, layers: 80, hidden: 8192, kvHeads: 8, headDim: 128, source: 'meta-llama/Llama-3.1-70B config.json and model card' },
  'llama-3.2-3b': { name: 'llama-3.2-3b', params: 3.21e9, layers: 28, hidden: 3072, kvHeads: 8, headDim: 128, source: 'meta-llama/Llama-3.2-3B config.json and model card' },
  'llama-3.2-1b': { name: 'llama-3.2-1b', params: 1.24e9, layers: 16, hidden: 2048, kvHeads: 8, headDim: 64, source: 'meta-llama/Llama-3.2-1B config.json and model card' },
};

/**
 * The efficiencies every preset shares, fitted to the measurements BENCHMARKS.md cites ("The engine model"):
 * 77% of peak bandwidth in decode (a lone request on an A100), half the dense peak in the matrix products.
 * vLLM's defaults for max_num_seqs (256), max_num_batched_tokens (8,192 for the OpenAI server) and
 * gpu_memory_utilization (0.9).
 */
const ENGINE_DEFAULTS = { bandwidthEfficiency: 0.77, computeEfficiency: 0.5, parallelEfficiency: 1, stepOverheadMs: 0, maxNumSeqs: 256, maxBatchedTokens: 8192, gpuMemoryUtilization: 0.9 } as const;

function preset(name: string, model: string, gpu: string, gpus: number, weights: Precision, extra: Partial<EngineSpec> = {}): EngineSpec {
  return { name, model: MODELS[model]!, gpu: GPUS[gpu]!, gpus, weights, kvCache: 'bf16', ...ENGINE_DEFAULTS, ...extra };
}

/** Engine presets by name: `<model>-<gpus>x<gpu>-<weights>`. The default is {@link DEFAULT_PRESET}. */
export const ENGINE_PRESETS: Readonly<Record<string, EngineSpec>> = {
  'llama-3.1-8b-h100-bf16': preset('llama-3.1-8b-h100-bf16', 'llama-3.1-8b', 'h100-sxm', 1, 'bf16'),
  'llama-3.1-8b-h100-fp8': preset('llama-3.1-8b-h100-fp8', 'llama-3.1-8b', 'h100-sxm', 1, 'fp8'),
  // Four GPUs per pod: all-reduces over NVLink cost a share of the ideal 4× (an assumption, not a measurement).
  'llama-3.1-70b-4xh100-bf16': preset('llama-3.1-70b-4xh100-bf16', 'llama-3.1-70b', 'h100-sxm', 4, 'bf16', { parallelEfficiency: 0.85 }),
  'llama-3.1-70b-4xh100-fp8': preset('llama-3.1-70b-4xh100-fp8', 'llama-3.1-70b', 'h100-sxm', 4, 'fp8', { parallelEfficiency: 0.85 }),
  'llama-3.2-3b-h100-fp8': preset('llama-3.2-3b-h100-fp8', 'llama-3.2-3b', 'h100-sxm', 1, 'fp8'),
  'llama-3.2-1b-h100-bf16': preset('llama-3.2-1b-h100-bf16', 'llama-3.2-1b', 'h100-sxm', 1, 'bf16'),
  'llama-3.1-8b-a100-40gb-bf16': preset('llama-3.1-8b-a100-40gb-bf16', 'llama-3.1-8b', 'a100-sxm-40gb', 1, 'bf16'),
};

/** The preset `sim-vllm` and `simulate` use unless told otherwise: Llama-3.1-8B in FP8 on one H100 SXM. */
export const DEFAULT_PRESET = 'llama-3.1-8b-h100-fp8';

/** Bytes of one precision's number. */
const BYTES: Record<Precision, number> = { bf16: 2, fp8: 1 };

/** What a spec implies: sizes, capacities and the rates a step runs at. */
export interface EngineFigures {
  readonly weightBytes: number;
  readonly kvBytesPerToken: number;
  /** Tokens the KV cache holds. */
  readonly kvTokens: number;
  /** Bytes/s and FLOP/s the pod reaches (after efficiencies). */
  readonly bandwidth: number;
  readonly flops: number;
  /** Bytes/s and FLOP/s of the pod at 100% (the physical bounds). */
  readonly peakBandwidth: number;
  readonly peakFlops: number;
}

/** The figures of `e`; see {@link EngineFigures}. Assumes a spec {@link checkEngineSpec} accepts. */
export function engineFigures(e: EngineSpec): EngineFigures {
  const m = e.model;
  const weightBytes = m.params * BYTES[e.weights];
  const kvBytesPerToken = 2 * m.layers * m.kvHeads * m.headDim * BYTES[e.kvCache];
  const kvTokens = Math.floor((e.gpu.memoryBytes * e.gpus * e.gpuMemoryUtilization - weightBytes) / kvBytesPerToken);
  const peakBandwidth = e.gpu.bandwidth * e.gpus;
  const peakFlops = (e.weights === 'fp8' && e.gpu.flopsFp8 !== null ? e.gpu.flopsFp8 : e.gpu.flopsBf16) * e.gpus;
  const tp = e.gpus > 1 ? e.parallelEfficiency : 1;
  return { weightBytes, kvBytesPerToken, kvTokens, peakBandwidth, peakFlops, bandwidth: peakBandwidth * e.bandwidthEfficiency * tp, flops: peakFlops * e.computeEfficiency * tp };
}

/**
 * The work of one step: `tokens` computed (one per decoding sequence plus the prompt tokens of the chunks),
 * `kvRead` cached tokens read, and `attended` (query, key) pairs of attention.
 */
export interface StepWork {
  readonly tokens: number;
  readonly kvRead: number;
  readonly attended: number;
}

/** Bytes a step moves and FLOP it does. */
export function stepCost(e: EngineSpec, f: EngineFigures, w: StepWork): { bytes: number; flop: number } {
  const bytes = f.weightBytes + w.kvRead * f.kvBytesPerToken;
  // 2 FLOP per parameter per token; attention adds QKᵀ and AV: 4 × hidden per (query, key) pair per layer.
  const flop = 2 * e.model.params * w.tokens + 4 * e.model.layers * e.model.hidden * w.attended;
  return { bytes, flop };
}

/** How long a step takes, ms; never less than the bandwidth floor or the FLOP/s peak allow. */
export function stepMs(e: EngineSpec, f: EngineFigures, w: StepWork): number {
  if (w.tokens <= 0) return 0;
  const { bytes, flop } = stepCost(e, f, w);
  return Math.max((1000 * bytes) / f.bandwidth, (1000 * flop) / f.flops) + e.stepOverheadMs;
}

/**
 * The engine in steady state for requests of `input` prompt and `output` generated tokens, `c` of them in the
 * batch: each step decodes c tokens and prefills the prompts of the c/output sequences that start per step,
 * a sequence attends to its prompt and half its output on average, and a request lasts `output` steps (the
 * step that ends its prefill gives its first token). The aggregate simulation uses this closed form; the
 * per-request engine ({@link createEngine} in engine.ts) steps the same cost model request by request.
 */
export interface SteadyState {
  /** Step time at c sequences in the batch, ms. */
  stepMs(c: number): number;
  /** Latency of a request of `output` tokens while the batch holds c mean requests, ms. */
  latencyMs(c: number, output?: number): number;
  /** Requests/s at c in the batch. */
  throughput(c: number): number;
  /** The largest batch: max_num_seqs, the KV cache and the per-step token budget all allow it. */
  readonly maxConcurrency: number;
}

/** See {@link SteadyState}. */
export function steadyState(e: EngineSpec, input: number, output: number): SteadyState {
  const f = engineFigures(e);
  const perSeqTokens = 1 + input / output;
  const context = input + output / 2;
  const step = (c: number) => stepMs(e, f, { tokens: c * perSeqTokens, kvRead: c * context, attended: c * context + (c / output) * input * (input / 2) });
  const maxConcurrency = Math.max(1, Math.min(e.maxNumSeqs, Math.floor(f.kvTokens / (input + output)), Math.floor(e.maxBatchedTokens / perSeqTokens)));
  return {
    stepMs: step,
    latencyMs: (c, out = output) => Math.max(1, out) * step(Math.max(c, 1)),
    throughput: (c) => (c <= 0 ? 0 : (1000 * c) / (output * step(c))),
    maxConcurrency,
  };
}

/**
 * Why `e` cannot run, or null: a zero or negative figure, an efficiency above 1, weights that leave no room for
 * a KV cache. Each problem names the field (as a path under the spec) and the reason.
 */
export function checkEngineSpec(e: EngineSpec): { path: (string | number)[]; message: string }[] {
  const out: { path: (string | number)[]; message: string }[] = [];
  const positive = (path: (string | number)[], v: number) => {
    if (!(Number.isFinite(v) && v > 0)) out.push({ path, message: `must be a number above zero (got ${v})` });
  };
  positive(['gpu', 'memoryBytes'], e.gpu.memoryBytes);
  positive(['gpu', 'bandwidth'], e.gpu.bandwidth);
  positive(['gpu', 'flopsBf16'], e.gpu.flopsBf16);
  if (e.gpu.flopsFp8 !== null) positive(['gpu', 'flopsFp8'], e.gpu.flopsFp8);
  for (const k of ['params', 'layers', 'hidden', 'kvHeads', 'headDim'] as const) positive(['model', k], e.model[k]);
  positive(['gpus'], e.gpus);
  for (const k of ['bandwidthEfficiency', 'computeEfficiency', 'parallelEfficiency', 'gpuMemoryUtilization'] as const) {
    const v = e[k];
    if (!(v > 0 && v <= 1)) out.push({ path: [k], message: `must be above 0 and at most 1 (got ${v}): no engine beats the hardware's peak` });
  }
  if (!(e.stepOverheadMs >= 0)) out.push({ path: ['stepOverheadMs'], message: `must not be negative (got ${e.stepOverheadMs})` });
  positive(['maxNumSeqs'], e.maxNumSeqs);
  positive(['maxBatchedTokens'], e.maxBatchedTokens);
  if (out.length === 0) {
    const f = engineFigures(e);
    const usable = e.gpu.memoryBytes * e.gpus * e.gpuMemoryUtilization;
    if (f.weightBytes >= usable) out.push({ path: ['model', 'params'], message: `${(f.weightBytes / 1e9).toFixed(1)} GB of weights do not fit in ${(usable / 1e9).toFixed(1)} GB (${e.gpus} × ${e.gpu.name} at ${e.gpuMemoryUtilization}): no room for a KV cache` });
    else if (f.kvTokens < 1) out.push({ path: ['model'], message: 'one token of KV cache does not fit beside the weights' });
  }
  return out;
}
