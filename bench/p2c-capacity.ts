/**
 * How much load each balancer policy holds within the SLO (`npm run bench -- --only p2c-capacity`): for least
 * request (two choices, each Envoy counting only its own requests; with equal and with load-aware endpoint
 * weights), round robin and random, the highest load, as
 * a fraction of eight pods' full-batch capacity, at which the p99 over the run and over its last minute both stay
 * under the SLO. Per-request simulation (every request on a simulated engine), 5 minutes per trial, found by
 * bisection to 1/128. Unlike a p99 ratio at a fixed load, this does not grow with the run: beyond the threshold a
 * queue grows without bound, below it none does, and the last-minute check tells the two apart.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runExact } from '../src/simulate/exact.js';
import { loadScenario } from '../src/simulate/scenario.js';

interface Trial {
  readonly balancer: 'least-request' | 'round-robin' | 'random';
  readonly envoys: number;
  readonly slow: boolean;
  /** Load-aware endpoint weights from the control plane (src/balance/weights.ts). */
  readonly weights: 'equal' | 'load';
}

/** Whether the policy holds `load` within the SLO; `minutes` of per-request simulation. */
function holds(t: Trial, load: number, minutes: number, dir: string): boolean {
  const file = path.join(dir, 'trial.yaml');
  fs.writeFileSync(file, `duration: ${minutes}m\nseed: 1\nslo: 1s\nmode: exact\ntraffic:\n  constant: { load: ${load} }\nfleet:\n${t.slow ? '  slowPods: { oneIn: 8, factor: 3 }\n' : '  targetPerPod: 90\n'}balancers: { count: ${t.envoys} }\nruns:\n  - { name: x, balancer: ${t.balancer}, scaling: { fixed: 8 }, weights: ${t.weights} }\n`);
  const s = loadScenario(file);
  if (!s.ok) throw new Error(s.error.join('\n'));
  const r = runExact(s.value, s.value.runs[0]!);
  const last = r.minutes[r.minutes.length - 1]!;
  return (r.overall.p99Ms ?? Infinity) <= 1000 && (last.p99Ms ?? Infinity) <= 1000;
}

/** The highest load (to 1/128) the policy holds; bisection over (0, 1]. */
export function capacity(t: Trial, minutes = 5): number {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2c-capacity-'));
  try {
    let lo = 0;
    let hi = 1;
    if (holds(t, 1, minutes, dir)) return 1;
    while (hi - lo > 1 / 128) {
      const mid = (lo + hi) / 2;
      if (holds(t, mid, minutes, dir)) lo = mid;
      else hi = mid;
    }
    return lo;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Prints the table: policy × pods × balancers (`weights`: only the rows with those endpoint weights). */
export function p2cCapacity(minutes = 5, weights?: 'equal' | 'load'): void {
  const trials: Trial[] = [];
  for (const slow of [true, false]) {
    for (const weights of ['equal', 'load'] as const) for (const envoys of [1, 10, 100, 400]) trials.push({ balancer: 'least-request', envoys, slow, weights });
    trials.push({ balancer: 'round-robin', envoys: 16, slow, weights: 'equal' }, { balancer: 'random', envoys: 16, slow, weights: 'equal' });
  }
  if (weights !== undefined) trials.splice(0, trials.length, ...trials.filter((t) => t.weights === weights));
  console.log(`\n## Highest load with p99 under 1 s (eight pods; ${minutes}-minute per-request runs; load = a share of their full-batch capacity)\n`);
  console.log('| pods | policy | endpoint weights | Envoys (each counting its own requests) | highest load |');
  console.log('|---|---|---|---:|---:|');
  for (const t of trials) {
    const c = capacity(t, minutes);
    console.log(`| ${t.slow ? 'one 3× slower' : 'all equal'} | ${t.balancer} | ${t.weights === 'load' ? 'load-aware' : 'equal'} | ${t.envoys} | ${c >= 1 ? '≥ 100%' : `${(c * 100).toFixed(1)}%`} |`);
  }
}
