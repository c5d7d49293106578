import { expect } from 'chai';
import { createEngine, DEFAULT_ENGINE } from '../../src/sim/engine.js';
import { createFakeTimers } from '../support/fake-timers.js';

const IN = 50;
const OUT = 50;

/** C closed-loop clients (each sends again as soon as its answer is done), in virtual time. */
function run(concurrency: number, seconds = 10) {
  const timers = createFakeTimers();
  const engine = createEngine(DEFAULT_ENGINE, timers);
  const latencies: number[] = [];
  const ttfts: number[] = [];
  const warmup = 2000;
  const send = () => {
    const start = timers.now();
    engine.submit({
      inputTokens: IN,
      maxTokens: OUT,
      onFirstToken: (at) => start >= warmup && ttfts.push(at - start),
      onToken: () => {},
      onDone: (at) => {
        if (start >= warmup) latencies.push(at - start);
        send();
      },
    });
  };
  for (let i = 0; i < concurrency; i++) send();
  timers.advance(seconds * 1000);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return { latency: mean(latencies), ttft: mean(ttfts), throughput: latencies.length / ((seconds * 1000 - warmup) / 1000), waiting: engine.waiting() };
}

/** The documented curve: TTFT + N × step(C), with step(C) = decodeBase + decodePerSeq × C. */
function predicted(c: number): number {
  const d = DEFAULT_ENGINE;
  return d.prefillBaseMs + d.prefillPerTokenMs * IN + OUT * (d.decodeBaseMs + d.decodePerSeqMs * Math.min(c, d.maxBatch));
}

describe('the simulator latency model (virtual time)', () => {
  for (const c of [1, 8, 64, 256]) {
    it(`at ${c} concurrent requests: latency and throughput follow the documented curve`, () => {
      const r = run(c);
      expect(r.latency).to.be.within(predicted(c) * 0.9, predicted(c) * 1.1);
      expect(r.throughput).to.be.within((c / predicted(c)) * 1000 * 0.85, (c / predicted(c)) * 1000 * 1.15);
      expect(r.waiting).to.equal(0);
    });
  }

  it('grows per-token time with the batch: a full batch is slower per request but far faster in total', () => {
    const one = run(1);
    const full = run(256);
    expect(full.latency).to.be.greaterThan(one.latency * 1.2);
    expect(full.throughput).to.be.greaterThan(one.throughput * 100);
    expect(full.throughput).to.be.within(1000, 1400); // about 1,200 requests/s per pod at 50 in / 50 out
  });

  it('queues beyond the batch size: twice the batch doubles latency and adds no throughput', () => {
    const full = run(256);
    const over = run(512);
    expect(over.waiting).to.be.greaterThan(0);
    expect(over.throughput).to.be.within(full.throughput * 0.9, full.throughput * 1.1);
    expect(over.latency).to.be.within(full.latency * 1.8, full.latency * 2.2);
  });
});

describe('createEngine: abort', () => {
  it('drops an aborted request from the batch or the queue at once; none of its callbacks run again', () => {
    const timers = createFakeTimers();
    const engine = createEngine({ ...DEFAULT_ENGINE, maxBatch: 1 }, timers);
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
