import { expect } from 'chai';
import { checkEngineSpec, ENGINE_PRESETS, engineFigures, GPUS, stepMs, steadyState, type EngineSpec } from '../../src/sim/hardware.js';

/** Bytes per number, written out here rather than taken from the model under test. */
const BYTES = { bf16: 2, fp8: 1 } as const;

/** The physical floors of a step, computed from the public figures alone: bytes over peak bandwidth, FLOP over peak FLOP/s. */
function floorsMs(e: EngineSpec, decode: number, context: number, prefill: number): { memory: number; compute: number } {
  const weights = e.model.params * BYTES[e.weights];
  const kv = 2 * e.model.layers * e.model.kvHeads * e.model.headDim * BYTES[e.kvCache];
  const bandwidth = e.gpu.bandwidth * e.gpus;
  const peak = (e.weights === 'fp8' && e.gpu.flopsFp8 ? e.gpu.flopsFp8 : e.gpu.flopsBf16) * e.gpus;
  return { memory: (1000 * (weights + decode * context * kv)) / bandwidth, compute: (1000 * 2 * e.model.params * (decode + prefill)) / peak };
}

describe('engine presets obey the hardware', () => {
  for (const [name, e] of Object.entries(ENGINE_PRESETS)) {
    it(`${name}: no step beats the memory-bandwidth floor or the FLOP/s peak`, () => {
      expect(checkEngineSpec(e)).to.deep.equal([]);
      const f = engineFigures(e);
      for (const decode of [1, 8, 64, 256]) {
        for (const context of [64, 1024, 4096]) {
          for (const prefill of [0, 512, e.maxBatchedTokens - decode]) {
            const ms = stepMs(e, f, { tokens: decode + prefill, kvRead: decode * context, attended: decode * context });
            const floor = floorsMs(e, decode, context, prefill);
            expect(ms, `decode ${decode}, context ${context}, prefill ${prefill}`).to.be.at.least(floor.memory);
            expect(ms, `decode ${decode}, context ${context}, prefill ${prefill}`).to.be.at.least(floor.compute);
          }
        }
      }
    });
  }

  it('Llama-3.1-8B in BF16 on an H100: a lone decode step reads 16 GB of weights, so it takes at least 4.8 ms', () => {
    const e = ENGINE_PRESETS['llama-3.1-8b-h100-bf16']!;
    expect(stepMs(e, engineFigures(e), { tokens: 1, kvRead: 100, attended: 100 })).to.be.at.least(4.79);
  });

  it('no preset of an 8B model on one H100 serves 1,200 requests/s of 50 in / 50 out: that needs more than the FP8 peak', () => {
    for (const name of ['llama-3.1-8b-h100-bf16', 'llama-3.1-8b-h100-fp8']) {
      const e = ENGINE_PRESETS[name]!;
      const c = steadyState(e, 50, 50);
      expect(c.throughput(c.maxConcurrency), name).to.be.below(1200);
    }
  });

  it('the KV cache is what memory leaves after the weights: 70B in BF16 fits on four H100s, not on one', () => {
    const four = ENGINE_PRESETS['llama-3.1-70b-4xh100-bf16']!;
    expect(engineFigures(four).kvTokens).to.be.within(400_000, 500_000); // (320 GB × 0.9 − 141 GB) / 320 KiB
    const one = { ...four, gpus: 1 };
    expect(checkEngineSpec(one).map((p) => p.message).join()).to.match(/do not fit/);
  });
});

describe('checkEngineSpec refuses impossible engines, saying which field and why', () => {
  const base = ENGINE_PRESETS['llama-3.1-8b-h100-fp8']!;
  const cases: [string, EngineSpec, string, RegExp][] = [
    ['zero bandwidth', { ...base, gpu: { ...GPUS['h100-sxm']!, bandwidth: 0 } }, 'gpu.bandwidth', /above zero/],
    ['an efficiency above 1', { ...base, computeEfficiency: 1.2 }, 'computeEfficiency', /at most 1/],
    ['weights larger than memory', { ...base, gpu: { ...GPUS['h100-sxm']!, memoryBytes: 8e9 } }, 'model.params', /do not fit/],
    ['a negative overhead', { ...base, stepOverheadMs: -1 }, 'stepOverheadMs', /negative/],
  ];
  for (const [what, spec, path, message] of cases) {
    it(what, () => {
      const problems = checkEngineSpec(spec);
      expect(problems.map((p) => p.path.join('.'))).to.include(path);
      expect(problems.map((p) => p.message).join('\n')).to.match(message);
    });
  }
});
