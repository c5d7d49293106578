import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { runAggregate } from '../../src/simulate/aggregate.js';
import { runExact } from '../../src/simulate/exact.js';
import { loadScenario, withOverrides, type Scenario } from '../../src/simulate/scenario.js';
import { simulate } from '../../src/simulate/simulate.js';
import { parseTrace, stackedCounts } from '../../src/simulate/traffic.js';
import { createRandom } from '../../src/simulate/random.js';
import { rateFunction } from '../../src/simulate/common.js';
import { LatencyHistogram } from '../../src/simulate/histogram.js';
import { verdict } from '../../src/simulate/report.js';
import { ENGINE_PRESETS } from '../../src/sim/hardware.js';
import { DEFAULT_POLICY } from '../../src/scaler/decide.js';
import { ROOT } from '../support/processes.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'simulate-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const write = (name: string, text: string) => {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
};
const scenario = (text: string): Scenario => {
  const s = loadScenario(write(`s-${Math.random().toString(36).slice(2)}.yaml`, text));
  if (!s.ok) throw new Error(s.error.join('\n'));
  return s.value;
};

describe('simulate: traces', () => {
  it('reads CSV with its header and JSON lines, skipping blanks and comments', () => {
    const csv = parseTrace('# a trace\ntime,input_tokens,output_tokens\n0,50,40\n0.5,10,60\n\n1.25,20,1\n', 't.csv');
    expect(csv.ok && csv.value).to.deep.equal([{ t: 0, inputTokens: 50, outputTokens: 40 }, { t: 0.5, inputTokens: 10, outputTokens: 60 }, { t: 1.25, inputTokens: 20, outputTokens: 1 }]);
    const jsonl = parseTrace('{"time": 0.1, "input_tokens": 5, "output_tokens": 7}\n{"time": 2, "input_tokens": 0, "output_tokens": 1}\n', 't.jsonl');
    expect(jsonl.ok && jsonl.value.length).to.equal(2);
  });

  it('reports each malformed line as file:line: reason, and gives no requests at all', () => {
    const bad = parseTrace('time,input_tokens,output_tokens\n0,50,40\n1,50,40\n0.5,10,10\n2,x,40\n2,10,0\n3,10\n', 'day.csv');
    expect(bad).to.deep.equal({ ok: false, error: [
      'day.csv:4: time 0.5 is before the previous line\'s 1: a trace is in arrival order',
      'day.csv:5: input_tokens must be a whole number ≥ 0, got null',
      'day.csv:6: output_tokens must be a whole number ≥ 1, got 0',
      'day.csv:7: expected 3 fields (time,input_tokens,output_tokens), got 2',
    ] });
    const json = parseTrace('{"time": 1, "input_tokens": 5, "output_tokens": 7, "model": "x"}\n{"time": 2\n', 'day.jsonl');
    expect(!json.ok && json.error[0]).to.equal('day.jsonl:1: unknown key "model"');
    expect(!json.ok && json.error[1]).to.match(/^day\.jsonl:2: not JSON: /);
    expect(parseTrace('when,in,out\n1,2,3\n', 'h.csv')).to.deep.equal({ ok: false, error: ['h.csv:1: a CSV trace starts with the header "time,input_tokens,output_tokens" (or Azure\'s "TIMESTAMP,ContextTokens,GeneratedTokens"), not "when,in,out"'] });
  });
});

describe('simulate: real traces, scaled', () => {
  it('reads the Azure LLM trace format, times from its first row, and names a bad timestamp by line', () => {
    const azure = parseTrace('TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.9951690,396,109\n', 'a.csv');
    expect(azure.ok && azure.value.map((a) => [+a.t.toFixed(6), a.inputTokens, a.outputTokens])).to.deep.equal([[0, 374, 44], [4.314579, 396, 109]]);
    const bad = parseTrace('TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\nyesterday,1,1\n', 'a.csv');
    expect(bad.ok ? [] : bad.error).to.deep.equal(['a.csv:3: TIMESTAMP must be "YYYY-MM-DD HH:MM:SS.fffffff", got "yesterday"']);
  });

  it('stacks a trace to a peak: copies shifted within the window, the total scaled, the busiest minute at the peak it was asked for', () => {
    const arrivals = Array.from({ length: 600 }, (_, i) => ({ t: i < 300 ? i * 0.2 : 60 + (i - 300) * 2, inputTokens: 10, outputTokens: 10 }));
    const counts = stackedCounts(arrivals, 660, 3.5, 30, createRandom(1));
    expect(counts.reduce((n, x) => n + x, 0)).to.be.closeTo(600 * 3.5, 1e-6);
    const f = write('burst.csv', `time,input_tokens,output_tokens\n${arrivals.map((a) => `${a.t},10,10`).join('\n')}\n`);
    const s = scenario(`duration: 11m\ntraffic:\n  trace: { file: ${f}, peakRps: 50, shift: 1s }\nruns:\n  - { name: f, scaling: { fixed: 2 } }\n`);
    expect(s.traffic.kind === 'trace' && s.traffic.scale).to.be.closeTo(10, 1e-9); // the busiest minute: 300 requests, 5/s
    const rate = rateFunction(s);
    let first = 0;
    for (let t = 0; t < 60; t++) first += rate(t);
    expect(first / 60).to.be.within(45, 50);
  });
});

describe('simulate: scenarios', () => {
  it('refuses a bad scenario with file:line:column: path: reason for every problem, absurd values included', () => {
    const f = write('bad.yaml', 'duration: 10m\ntraffic:\n  pattern: { peakRps: -5 }\n  constant: { rps: 10 }\nruns:\n  - { name: a, scaling: { fixed: 0 } }\n  - { name: b, balancer: fastest, scaling: kpa }\n');
    const s = loadScenario(f);
    expect(s.ok).to.equal(false);
    const problems = !s.ok ? s.error : [];
    expect(problems).to.include(`${f}:3:23: traffic.pattern.peakRps: Too small: expected number to be >0`);
    expect(problems.some((p) => p.startsWith(`${f}:6:`) && p.includes('runs[0].scaling'))).to.equal(true);
    expect(problems.some((p) => p.startsWith(`${f}:7:`) && p.includes('runs[1].balancer'))).to.equal(true);
  });

  it('says when traffic is not exactly one of pattern, constant and trace, and reads a named trace and policy relative to the scenario', () => {
    const both = loadScenario(write('both.yaml', 'duration: 1m\ntraffic:\n  pattern: { peakRps: 5 }\n  constant: { rps: 10 }\nruns: [{ name: a, scaling: { fixed: 1 } }]\n'));
    expect(!both.ok && both.error[0]).to.match(/both\.yaml:3:3: traffic: give exactly one of pattern, constant, trace \(got pattern, constant\)$/);
    write('trace.csv', 'time,input_tokens,output_tokens\n0,50,oops\n');
    const trace = loadScenario(write('t.yaml', 'duration: 1m\ntraffic: { trace: trace.csv }\nruns: [{ name: a, scaling: { fixed: 1 } }]\n'));
    expect(!trace.ok && trace.error).to.deep.equal([`${path.join(dir, 'trace.csv')}:2: output_tokens must be a whole number ≥ 1, got null`]);
    write('policy.yaml', 'defaults:\n  tolerance: 3\n');
    const policy = loadScenario(write('p.yaml', 'duration: 1m\ntraffic: { constant: { rps: 10 } }\nruns: [{ name: a, scaling: { policy: policy.yaml } }]\n'));
    expect(!policy.ok && policy.error[0]).to.equal(`${path.join(dir, 'policy.yaml')}:2:14: defaults.tolerance: Too big: expected number to be <1 (scaling policy of runs[0])`);
  });

  it('refuses overrides that do not fit the scenario, naming the flag', () => {
    const s = scenario('duration: 1m\ntraffic: { constant: { rps: 100 } }\nruns: [{ name: a, scaling: kpa }, { name: o, scaling: oracle }]\n');
    expect(withOverrides(s, { replicas: 3 })).to.deep.equal({ ok: false, error: '--replicas: the scenario has no fixed-fleet run' });
    expect(withOverrides(s, { mode: 'exact' })).to.deep.equal({ ok: false, error: '--mode exact: the oracle runs in aggregate mode only' });
    const more = withOverrides(s, { peakRps: 500, durationS: 120, seed: 9 });
    expect(more.ok && more.value.traffic).to.deep.equal({ kind: 'constant', rps: 500, load: null });
  });

  it('takes another policy from the command line for every policy run (forced modes kept), and aims KPA-like and HPA-like with it', () => {
    const s = scenario('duration: 1m\ntraffic: { constant: { rps: 100 } }\nruns:\n  - { name: p, scaling: { policy: default } }\n  - { name: f, scaling: { policy: default }, mode: emergency }\n  - { name: k, scaling: kpa }\n');
    expect(s.targetPerPod).to.equal(DEFAULT_POLICY.modes.normal.targetPerPod);
    const other = { ...DEFAULT_POLICY, modes: { ...DEFAULT_POLICY.modes, normal: { ...DEFAULT_POLICY.modes.normal, targetPerPod: 42 } } };
    const o = withOverrides(s, { policy: { source: 'other.yaml', policy: other } });
    if (!o.ok) throw new Error(o.error);
    expect(o.value.targetPerPod).to.equal(42);
    expect(o.value.runs.map((r) => r.scaling.kind === 'policy' && [r.scaling.source, r.scaling.policy.modes.normal.targetPerPod, r.scaling.policy.forcedMode])).to.deep.equal([['other.yaml', 42, null], ['other.yaml', 42, 'emergency'], false]);
    const none = scenario('duration: 1m\ntraffic: { constant: { rps: 100 } }\nruns: [{ name: k, scaling: kpa }]\n');
    expect(withOverrides(none, { policy: { source: 'other.yaml', policy: other } })).to.deep.equal({ ok: false, error: '--policy: the scenario has no policy run' });
  });

  it('takes another engine and SLO from the command line: every class gets the SLO', () => {
    const s = scenario(`duration: 10m\ntraffic:\n  constant: { rps: 1000 }\nclasses:\n  - { name: a, share: 0.5, slo: 1s }\n  - { name: b, share: 0.5, slo: 3s }\nruns:\n  - { name: x, scaling: { fixed: 3 } }\n`);
    const o = withOverrides(s, { engine: ENGINE_PRESETS['llama-3.1-70b-4xh100-fp8']!, sloMs: 2000 });
    expect(o.ok && [o.value.engine.name, o.value.sloMs, ...o.value.classes.map((c) => c.sloMs)]).to.deep.equal(['llama-3.1-70b-4xh100-fp8', 2000, 2000, 2000]);
  });

  it('refuses a per-request run too large to finish, and points at the aggregate mode', () => {
    const s = scenario('duration: 24h\nmode: exact\ntraffic: { pattern: { peakRps: 200000 } }\nruns: [{ name: a, scaling: { fixed: 200 } }]\n');
    const r = simulate(s);
    expect(!r.ok && r.error).to.match(/^mode exact: about \d+ million requests per run is beyond the per-request mode's 50 million; use --mode aggregate, or a shorter --duration$/);
  });
});

describe('simulate: the model', () => {
  it('keeps latency quantiles within 1% whatever the weights', () => {
    const h = new LatencyHistogram(1000);
    for (let ms = 1; ms <= 1000; ms++) h.add(ms, 0.5);
    expect(h.quantile(0.5) / 500).to.be.within(0.99, 1.01);
    expect(h.quantile(0.99) / 990).to.be.within(0.99, 1.01);
    h.add(5000, 10);
    expect(h.overSlo()).to.equal(10);
  });

  it('gives the same result for the same seed, in both modes', () => {
    const s = scenario('duration: 1m\nseed: 7\ntraffic: { constant: { load: 0.6 } }\nfleet: { slowPods: { oneIn: 4, factor: 2 } }\nbalancers: { count: 4 }\nruns: [{ name: a, scaling: { fixed: 4 } }]\n');
    expect(runExact(s, s.runs[0]!)).to.deep.equal(runExact(s, s.runs[0]!));
    expect(runAggregate(s, s.runs[0]!)).to.deep.equal(runAggregate(s, s.runs[0]!));
  });

  it('per-request and aggregate agree on a steady fleet well below saturation (p50 and p99 within 15%)', () => {
    const s = scenario('duration: 3m\ntraffic: { constant: { load: 0.5 } }\nbalancers: { count: 8 }\nruns: [{ name: a, scaling: { fixed: 4 } }]\n');
    const exact = runExact(s, s.runs[0]!).overall;
    const fluid = runAggregate(s, s.runs[0]!).overall;
    expect(fluid.requests / exact.requests).to.be.within(0.98, 1.02);
    expect(fluid.p50Ms! / exact.p50Ms!).to.be.within(0.85, 1.15);
    expect(fluid.p99Ms! / exact.p99Ms!).to.be.within(0.85, 1.15);
  });

  it('least request (Envoy\'s rule, each balancer on its own counts) keeps a slow pod from queueing where round robin does not', () => {
    const s = scenario('duration: 1m\nmode: exact\ntraffic: { constant: { load: 0.8 } }\nfleet: { slowPods: { oneIn: 8, factor: 3 } }\nbalancers: { count: 16 }\nruns:\n  - { name: p2c, balancer: least-request, scaling: { fixed: 8 } }\n  - { name: rr, balancer: round-robin, scaling: { fixed: 8 } }\n');
    const [p2c, rr] = s.runs.map((r) => runExact(s, r).overall);
    expect(p2c!.p99Ms).to.be.below(1000);
    expect(rr!.p99Ms! / p2c!.p99Ms!, 'P2C p99 at least 2× better').to.be.above(2);
    expect(rr!.overSloFraction).to.be.above(0.05);
  });

  it('scales up for a burst and back down after it with the policy, never below the oracle\'s GPU-hours; a fixed fleet never scales', () => {
    const s = scenario([
      'duration: 40m', 'traffic:', '  pattern: { peakRps: 20000, troughRatio: 1, bursts: [{ at: 5m, factor: 2, rise: 60s, hold: 5m }] }',
      'runs:', '  - { name: ours, scaling: { policy: default } }', '  - { name: kpa, scaling: kpa }', '  - { name: hpa, scaling: hpa }', '  - { name: fixed, scaling: { fixed: peak } }', '  - { name: oracle, scaling: oracle }', '',
    ].join('\n'));
    const report = simulate(s);
    expect(report.ok).to.equal(true);
    const runs = report.ok ? report.value.runs : [];
    const [ours, , , fixed, oracle] = runs;
    const before = ours!.minutes[4]!.ready;
    expect(Math.max(...ours!.minutes.slice(5, 12).map((m) => m.desired)), 'scaled up for the burst').to.be.greaterThan(before * 1.5);
    expect(ours!.minutes[39]!.ready, 'back down after it').to.be.lessThan(before * 1.3);
    expect(fixed!.overall.scaleEvents).to.equal(0);
    for (const r of runs) expect(r.overall.gpuHours, r.name).to.be.at.least(oracle!.overall.gpuHours);
    expect(oracle!.overall.sloMinutes).to.equal(40);
  });
});

describe('simulate: the report concludes', () => {
  it('says which run keeps the most minutes and how ours compares with each baseline, by how much', () => {
    const s = scenario(`duration: 20m\ntraffic:\n  constant: { rps: 3000 }\nruns:\n  - { name: ours, scaling: { policy: default } }\n  - { name: kpa, scaling: kpa }\n  - { name: oracle, scaling: oracle }\n`);
    const r = simulate(s);
    if (!r.ok) throw new Error(r.error);
    const v = verdict(r.value);
    expect(v[0]).to.match(/^Most minutes within the SLO: .*\(20 of 20\)/);
    expect(v[1]).to.match(/^ours against kpa: (the same minutes|\d+ (more|fewer) minutes?) within the SLO, (the same GPU-hours|\d+\.\d% (fewer|more) GPU-hours) \(/);
    expect(v.some((x) => x.startsWith('Warning')), 'a steady fleet below its knee is within the validated range').to.equal(false);
  });

  it('warns where the aggregate mode is outside the range it was checked in: a burst that saturates the fleet', () => {
    const s = scenario(`duration: 20m\ntraffic:\n  pattern: { peakRps: 6000, troughRatio: 1, bursts: [{ at: 5m, factor: 2, rise: 60s, hold: 5m }] }\nruns:\n  - { name: ours, scaling: { policy: default } }\n`);
    const r = simulate(s);
    if (!r.ok) throw new Error(r.error);
    expect(r.value.runs[0]!.saturatedMinutes!.length).to.be.above(0);
    expect(r.value.runs[0]!.saturatedMinutes!.every((m) => m >= 5 && m < 12), `${r.value.runs[0]!.saturatedMinutes}`).to.equal(true);
    expect(verdict(r.value).at(-1)).to.match(/^Warning: in ours \(\d+ minutes?\) requests queued beyond full batches/);
  });
});

describe('simulate: the exact-rate bound (reactive scaling without lag)', () => {
  it('pays cold starts where the oracle does not: it misses burst minutes at a small headroom, and more headroom buys them back with GPU-hours', () => {
    const s = scenario([
      'duration: 30m', 'traffic:', '  pattern: { peakRps: 20000, troughRatio: 1, bursts: [{ at: 5m, factor: 2, rise: 60s, hold: 5m }] }',
      'runs:', '  - { name: tight, scaling: { exactRate: { headroom: 0.1 } } }', '  - { name: roomy, scaling: { exactRate: { headroom: 1.2 } } }', '  - { name: oracle, scaling: oracle }', '',
    ].join('\n'));
    const report = simulate(s);
    expect(report.ok).to.equal(true);
    const [tight, roomy, oracle] = report.ok ? report.value.runs.map((r) => r.overall) : [];
    expect(oracle!.sloMinutes).to.equal(30);
    expect(tight!.sloMinutes, 'the burst outruns pods that take 60-120 s').to.be.below(30);
    expect(tight!.gpuHours).to.be.above(oracle!.gpuHours);
    expect(roomy!.sloMinutes).to.equal(30);
    expect(roomy!.gpuHours).to.be.above(tight!.gpuHours * 1.5);
    expect(report.ok && report.value.runs[0]!.scaling).to.equal('exact rate now, +10% (no lag, cold starts)');
  });

  it('runs in aggregate mode only', () => {
    const s = scenario('duration: 1m\ntraffic: { constant: { rps: 100 } }\nruns: [{ name: e, scaling: { exactRate: { headroom: 0.5 } } }]\n');
    expect(withOverrides(s, { mode: 'exact' })).to.deep.equal({ ok: false, error: '--mode exact: exactRate runs in aggregate mode only' });
  });
});

describe('simulate: the committed scenarios load', () => {
  // examples/simulate/services/ and policies/ hold the endpoints and policy files scenarios name, not scenarios.
  for (const f of fs.readdirSync(path.join(ROOT, 'examples/simulate')).filter((f) => f.endsWith('.yaml'))) {
    it(f, () => {
      const s = loadScenario(path.join(ROOT, 'examples/simulate', f));
      expect(s.ok ? [] : s.error).to.deep.equal([]);
    });
  }
});
