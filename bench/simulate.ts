/**
 * The what-if simulator (`inferplane simulate`): how fast the aggregate mode simulates the reference day (24 h,
 * 200,000 requests/s at the peak, five runs), and how far it is from the per-request mode where both can run
 * (examples/simulate/burst-small.yaml: a ~10-pod fleet through a ×2 burst; p2c-vs-round-robin-80.yaml: a slow pod
 * in eight at 80% load). The answers published in BENCHMARKS.md come from the committed scenarios.
 */
import path from 'node:path';
import { runAggregate } from '../src/simulate/aggregate.js';
import { runExact } from '../src/simulate/exact.js';
import type { RunResult } from '../src/simulate/results.js';
import { loadScenario, withOverrides, type Scenario } from '../src/simulate/scenario.js';
import { fmt, median } from './common.js';

const ROOT = path.join(import.meta.dirname, '..');

function load(file: string, mode?: Scenario['mode']): Scenario {
  const s = loadScenario(path.join(ROOT, 'examples/simulate', file));
  if (!s.ok) throw new Error(s.error.join('\n'));
  const o = withOverrides(s.value, mode ? { mode } : {});
  if (!o.ok) throw new Error(o.error);
  return o.value;
}

/** |a/b − 1| over the minutes both have, as percentages. */
function minuteErrors(a: RunResult, b: RunResult, key: 'p50Ms' | 'p99Ms'): number[] {
  return a.minutes.flatMap((m, i) => {
    const x = m[key];
    const y = b.minutes[i]?.[key];
    return x !== null && y !== null && y !== undefined ? [Math.abs(x / y - 1) * 100] : [];
  });
}

/** Prints the speed of the aggregate mode on the reference day, then its error against the per-request mode. */
export async function simulateBench(): Promise<void> {
  console.log('\nsimulate: the aggregate mode on the reference day (examples/simulate/diurnal-burst-day.yaml), one core');
  const day = load('diurnal-burst-day.yaml');
  let total = 0;
  let requests = 0;
  for (const run of day.runs) {
    const t = performance.now();
    const r = runAggregate(day, run);
    const s = (performance.now() - t) / 1000;
    total += s;
    requests += r.overall.requests;
    console.log(`  ${run.name.padEnd(15)} ${fmt(s, 1)} s for 24 h: ${fmt(r.overall.requests / s / 1e6, 0)} million simulated requests/s; p99 ${fmt(r.overall.p99Ms ?? NaN, 0)} ms, SLO minutes ${r.overall.sloMinutes}/${r.overall.minuteCount}, ${fmt(r.overall.gpuHours, 0)} GPU-hours`);
  }
  console.log(`  all ${day.runs.length} runs: ${fmt(total, 1)} s, ${fmt(requests / total / 1e6, 0)} million simulated requests/s`);

  console.log('\nsimulate: aggregate against per-request, same scenario and seed (per-minute errors: median and max)');
  for (const file of ['burst-small.yaml', 'p2c-vs-round-robin-80.yaml']) {
    const exactScenario = load(file, 'exact');
    const fluidScenario = load(file, 'aggregate');
    for (const run of exactScenario.runs) {
      const t0 = performance.now();
      const exact = runExact(exactScenario, run);
      const t1 = performance.now();
      const fluid = runAggregate(fluidScenario, run);
      const t2 = performance.now();
      const e50 = minuteErrors(fluid, exact, 'p50Ms');
      const e99 = minuteErrors(fluid, exact, 'p99Ms');
      const o = (f: RunResult, e: RunResult, k: 'p50Ms' | 'p99Ms') => `${fmt(f.overall[k] ?? NaN, 0)}/${fmt(e.overall[k] ?? NaN, 0)}`;
      console.log(`  ${file} ${run.name}: per-request ${fmt(exact.overall.requests / 1e6, 1)} M requests in ${fmt((t1 - t0) / 1000, 1)} s (${fmt(exact.overall.requests / ((t1 - t0) / 1000) / 1000, 0)} k/s), aggregate in ${fmt(t2 - t1, 0)} ms`);
      console.log(`    overall p50 aggregate/per-request ${o(fluid, exact, 'p50Ms')} ms, p99 ${o(fluid, exact, 'p99Ms')} ms; per-minute p50 error median ${fmt(median(e50), 1)}% max ${fmt(Math.max(...e50), 1)}%, p99 error median ${fmt(median(e99), 1)}% max ${fmt(Math.max(...e99), 1)}%`);
      console.log(`    SLO minutes ${fluid.overall.sloMinutes} vs ${exact.overall.sloMinutes} of ${exact.overall.minuteCount}; GPU-hours ${fmt(fluid.overall.gpuHours, 2)} vs ${fmt(exact.overall.gpuHours, 2)}; peak pods ${fluid.overall.peakPods} vs ${exact.overall.peakPods}`);
    }
  }
}
