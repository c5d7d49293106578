/**
 * The engine model against published measurements (`npm run bench -- --only engine`). Each case runs the
 * per-request engine (src/sim/engine.ts) in virtual time the way the publication ran vLLM, and prints the
 * model's figure beside the published one. Sources and workload details: BENCHMARKS.md, "The engine model".
 */
import { createEngine } from '../src/sim/engine.js';
import { ENGINE_PRESETS, steadyState, type EngineSpec } from '../src/sim/hardware.js';
import { DEFAULT_POLICY } from '../src/scaler/decide.js';
import { batchFor } from '../src/simulate/aggregate.js';

const TARGET = DEFAULT_POLICY.modes.normal.targetPerPod;

interface Case {
  readonly name: string;
  readonly source: string;
  readonly spec: EngineSpec;
  readonly concurrency: number;
  readonly input: number;
  readonly output: number;
  /** Output tokens/s the source reports. */
  readonly published: number;
}

/** Output tokens/s of `concurrency` closed-loop clients (each sends again when answered), staggered, in virtual time. */
export function closedLoopTokensPerSecond(spec: EngineSpec, concurrency: number, input: number, output: number, seconds = 120): number {
  let now = 0;
  const timers: { at: number; seq: number; fn: () => void }[] = [];
  let seq = 0;
  const clock = { now: () => now, setTimeout: (fn: () => void, ms: number) => void timers.push({ at: now + ms, seq: seq++, fn }) };
  const engine = createEngine({ spec, slowdown: 1 }, clock);
  const warmup = 10_000;
  let tokens = 0;
  const send = () => engine.submit({ inputTokens: input, maxTokens: output, onToken: () => void (now >= warmup && tokens++), onDone: () => send() });
  const spread = steadyState(spec, input, output).latencyMs(Math.min(concurrency, spec.maxNumSeqs));
  for (let i = 0; i < concurrency; i++) clock.setTimeout(send, (i * spread) / concurrency);
  const end = seconds * 1000;
  while (timers.length > 0) {
    let k = 0;
    for (let i = 1; i < timers.length; i++) if (timers[i]!.at < timers[k]!.at || (timers[i]!.at === timers[k]!.at && timers[i]!.seq < timers[k]!.seq)) k = i;
    const t = timers.splice(k, 1)[0]!;
    if (t.at > end) break;
    now = t.at;
    t.fn();
  }
  return tokens / ((end - warmup) / 1000);
}

const A100 = ENGINE_PRESETS['llama-3.1-8b-a100-40gb-bf16']!;
const H100_FP8 = ENGINE_PRESETS['llama-3.1-8b-h100-fp8']!;

/** The published measurements the presets are checked against. */
export const CASES: readonly Case[] = [
  { name: 'A100 40GB, 8B BF16, 1 client, 1,024 in / 128 out', source: 'johnmusgrave.com, "vLLM throughput-latency sweep on NVIDIA A100"', spec: A100, concurrency: 1, input: 1024, output: 128, published: 75 },
  { name: 'A100 40GB, 8B BF16, 8 clients, 1,024 in / 128 out', source: 'same sweep: 6.6× the 1-client throughput', spec: A100, concurrency: 8, input: 1024, output: 128, published: 75 * 6.6 },
  // MLPerf Inference v5.1 llama3.1-8b (CNN/DailyMail) Offline: inputs ≈ 781 words × 1.31 tokens/word + the prompt
  // template, outputs up to 128 tokens; offline means as many requests in flight as the engine takes.
  { name: 'H100 SXM, 8B FP8, MLPerf v5.1 Offline (≈1,050 in / ≈120 out)', source: 'Red Hat, "Efficient and reproducible LLM inference: Red Hat MLPerf Inference v5.1 results" (vLLM 0.10.0)', spec: { ...H100_FP8, maxNumSeqs: 1024 }, concurrency: 1024, input: 1050, output: 120, published: 5777 },
];

/** Prints model vs published for every case; returns the largest relative error. */
export function engineCalibration(): number {
  let worst = 0;
  console.log('\n## The engine model against published measurements\n');
  console.log('| case | published tok/s | model tok/s | model vs published | source |');
  console.log('|---|---:|---:|---:|---|');
  for (const c of CASES) {
    const model = closedLoopTokensPerSecond(c.spec, c.concurrency, c.input, c.output);
    const error = model / c.published - 1;
    worst = Math.max(worst, Math.abs(error));
    console.log(`| ${c.name} | ${Math.round(c.published).toLocaleString('en-US')} | ${Math.round(model).toLocaleString('en-US')} | ${error >= 0 ? '+' : ''}${(error * 100).toFixed(1)}% | ${c.source} |`);
  }
  console.log(`\n## Requests/s per pod at 50 in / 50 out (steady state: at ${TARGET} in flight, the default target, and at the full batch)\n`);
  console.log(`| preset | lone decode step (ms) | full-batch step (ms) | requests/s at the default target (${TARGET} in flight) | requests/s at the full batch | latency at ${TARGET} in flight (ms) | in flight at 91% of the full batch's requests/s (the default's rule) |`);
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const [name, e] of Object.entries(ENGINE_PRESETS)) {
    const c = steadyState(e, 50, 50);
    console.log(`| ${name} | ${c.stepMs(1).toFixed(2)} | ${c.stepMs(c.maxConcurrency).toFixed(2)} | ${Math.round(c.throughput(TARGET))} | ${Math.round(c.throughput(c.maxConcurrency))} | ${Math.round(c.latencyMs(TARGET))} | ${Math.floor(batchFor(c, 0.914 * c.throughput(c.maxConcurrency)))} |`);
  }
  return worst;
}
