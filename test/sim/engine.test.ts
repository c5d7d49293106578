import { expect } from 'chai';
import { createEngine, DEFAULT_ENGINE, type EngineParams } from '../../src/sim/engine.js';
import { ENGINE_PRESETS, engineFigures, steadyState } from '../../src/sim/hardware.js';
import { createFakeTimers } from '../support/fake-timers.js';

const IN = 50;
const OUT = 50;

/**
 * C closed-loop clients (each sends again as soon as its answer is done), in virtual time, their first requests
 * spread over one request's lifetime: clients started together stay in lockstep (all prefilling in one step,
 * then all decoding), which no real arrival process does.
 */
function run(concurrency: number, params: EngineParams = DEFAULT_ENGINE, seconds = 10, input = IN, output = OUT) {
  const timers = createFakeTimers();
  const engine = createEngine(params, timers);
  const latencies: number[] = [];
  const ttfts: number[] = [];
  const warmup = 2000;
  const send = () => {
    const start = timers.now();
    engine.submit({
      inputTokens: input,
      maxTokens: output,
      onFirstToken: (at) => start >= warmup && ttfts.push(at - start),
      onToken: () => {},
      onDone: (at) => {
        if (start >= warmup) latencies.push(at - start);
        send();
      },
    });
  };
  const spread = steadyState(params.spec, input, output).latencyMs(Math.min(concurrency, params.spec.maxNumSeqs)) * params.slowdown;
  for (let i = 0; i < concurrency; i++) timers.setTimeout(send, (i * spread) / concurrency);
  timers.advance(seconds * 1000);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return { latency: mean(latencies), ttft: mean(ttfts), throughput: latencies.length / ((seconds * 1000 - warmup) / 1000), waiting: engine.waiting() };
}

describe('the engine, request by request, against its steady-state closed form (virtual time)', () => {
  for (const name of ['llama-3.1-8b-h100-fp8', 'llama-3.1-8b-h100-bf16', 'llama-3.1-70b-4xh100-fp8']) {
    const spec = ENGINE_PRESETS[name]!;
    const curve = steadyState(spec, IN, OUT);
    for (const c of [1, 32, 128, 256]) {
      it(`${name}, ${c} concurrent requests: throughput and latency within 15% of the closed form`, () => {
        const r = run(c, { spec, slowdown: 1 });
        expect(r.throughput).to.be.within(curve.throughput(c) * 0.85, curve.throughput(c) * 1.15);
        expect(r.latency).to.be.within(curve.latencyMs(c) * 0.85, curve.latencyMs(c) * 1.15);
        expect(r.waiting).to.equal(0);
      });
    }
  }

  it('queues beyond max_num_seqs: twice the batch doubles latency and adds no throughput', () => {
    const full = run(256);
    const over = run(512);
    expect(over.waiting).to.be.greaterThan(0);
    expect(over.throughput).to.be.within(full.throughput * 0.9, full.throughput * 1.1);
    expect(over.latency).to.be.within(full.latency * 1.8, full.latency * 2.2);
  });

  it('a slowdown of 3 makes every step 3 times longer: a third of the throughput at the same batch', () => {
    const nominal = run(64);
    const slow = run(64, { ...DEFAULT_ENGINE, slowdown: 3 });
    expect(slow.throughput).to.be.within((nominal.throughput / 3) * 0.95, (nominal.throughput / 3) * 1.05);
  });
});

describe('createEngine: memory and prefill', () => {
  it('admits no more than the KV cache holds: the rest wait, though max_num_seqs has room', () => {
    const spec = ENGINE_PRESETS['llama-3.1-70b-4xh100-bf16']!;
    const perRequest = 8000 + 2000;
    const fits = Math.floor(engineFigures(spec).kvTokens / perRequest);
    expect(fits).to.be.below(spec.maxNumSeqs);
    const timers = createFakeTimers();
    const engine = createEngine({ spec, slowdown: 1 }, timers);
    for (let i = 0; i < fits + 5; i++) engine.submit({ inputTokens: 8000, maxTokens: 2000, onToken: () => {}, onDone: () => {} });
    expect(engine.running()).to.equal(fits);
    expect(engine.waiting()).to.equal(5);
    expect(engine.kvUsage()).to.be.within(0.9, 1);
  });

  it('refuses a request the KV cache could never hold, as vLLM refuses a prompt beyond its context', () => {
    const engine = createEngine(DEFAULT_ENGINE, createFakeTimers());
    const kv = engineFigures(DEFAULT_ENGINE.spec).kvTokens;
    expect(() => engine.submit({ inputTokens: kv, maxTokens: 1, onToken: () => {}, onDone: () => {} })).to.throw(RangeError, /KV cache/);
  });

  it('chunks a long prompt over several steps while the batch keeps decoding (chunked prefill)', () => {
    const timers = createFakeTimers();
    const engine = createEngine(DEFAULT_ENGINE, timers);
    const budget = DEFAULT_ENGINE.spec.maxBatchedTokens;
    let decoded = 0;
    engine.submit({ inputTokens: 10, maxTokens: 1000, onToken: () => decoded++, onDone: () => {} });
    timers.advance(50);
    const before = decoded;
    let firstAt = -1;
    let stepsDuringPrefill = -1;
    engine.submit({ inputTokens: 3 * budget, maxTokens: 5, onFirstToken: (at) => { firstAt = at; stepsDuringPrefill = decoded - before; }, onToken: () => {}, onDone: () => {} });
    timers.advance(2000);
    expect(firstAt).to.be.greaterThan(0);
    // Three chunks of the budget, less the one decode token each step carries: four steps, each decoding the other.
    expect(stepsDuringPrefill).to.equal(4);
  });
});

describe('createEngine: abort', () => {
  it('drops an aborted request from the batch or the queue at once; none of its callbacks run again', () => {
    const timers = createFakeTimers();
    const engine = createEngine({ ...DEFAULT_ENGINE, spec: { ...DEFAULT_ENGINE.spec, maxNumSeqs: 1 } }, timers);
    const tokens = { a: 0, b: 0, c: 0 };
    const done: string[] = [];
    const submit = (k: keyof typeof tokens) => engine.submit({ inputTokens: 1, maxTokens: 100, onToken: () => tokens[k]++, onDone: () => done.push(k) });
    const abortA = submit('a');
    const abortB = submit('b');
    submit('c');
    timers.advance(100);
    expect([engine.running(), engine.waiting()]).to.deep.equal([1, 2]);
    abortB(); // queued
    abortA(); // running: c takes its place
    expect([engine.running(), engine.waiting()]).to.deep.equal([1, 0]);
    const seenA = tokens.a;
    timers.advance(10_000);
    expect(tokens.a).to.equal(seenA);
    expect(tokens.b).to.equal(0);
    expect(done).to.deep.equal(['c']);
  });
});
