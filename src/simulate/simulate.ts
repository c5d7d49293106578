import os from 'node:os';
import { err, ok, type Result } from '../result.js';
import { runAggregate } from './aggregate.js';
import { expectedRequests, MAX_EXACT_REQUESTS, runExact } from './exact.js';
import type { RunResult } from './results.js';
import type { Scenario } from './scenario.js';

/** What one `inferplane simulate` produces: the JSON output, and what the HTML report draws. */
export interface SimulationReport {
  readonly scenario: {
    readonly file: string;
    readonly durationS: number;
    readonly mode: Scenario['mode'];
    readonly seed: number;
    readonly sloMs: number;
    readonly traffic: string;
    readonly balancers: number;
  };
  readonly machine: { readonly cpu: string; readonly cores: number; readonly node: string };
  readonly wallSeconds: number;
  /** Requests simulated per second of wall time, over every run. */
  readonly simulatedRequestsPerSecond: number;
  readonly runs: readonly RunResult[];
}

/** Describes the traffic in a few words, for reports. */
function trafficText(s: Scenario): string {
  const t = s.traffic;
  switch (t.kind) {
    case 'pattern': return `diurnal, peak ${t.peakRps} req/s, trough ×${t.troughRatio}${t.bursts.length ? `, ${t.bursts.length} burst${t.bursts.length > 1 ? 's' : ''} (×${t.bursts.map((b) => b.factor).join(', ×')})` : ''}`;
    case 'constant': return t.rps !== null ? `constant ${t.rps} req/s` : `constant, ${Math.round(t.load! * 100)}% of the fixed fleet's capacity`;
    case 'trace': return `trace ${t.file} (${t.arrivals.length} requests${t.scale !== 1 ? `, stacked ×${+t.scale.toPrecision(4)}, copies shifted by up to ${t.shiftS} s` : ''})`;
  }
}

/**
 * Runs every run of the scenario, one after the other, in the scenario's mode. A per-request run expected to
 * simulate more than {@link MAX_EXACT_REQUESTS} is refused before it starts, with the way out.
 */
export function simulate(s: Scenario, onRun?: (r: RunResult) => void): Result<SimulationReport, string> {
  if (s.mode === 'exact') {
    const n = expectedRequests(s);
    if (n > MAX_EXACT_REQUESTS) return err(`mode exact: about ${Math.round(n / 1e6)} million requests per run is beyond the per-request mode's ${MAX_EXACT_REQUESTS / 1e6} million; use --mode aggregate, or a shorter --duration`);
  }
  const started = performance.now();
  const runs: RunResult[] = [];
  for (const run of s.runs) {
    const r = s.mode === 'exact' ? runExact(s, run) : runAggregate(s, run);
    runs.push(r);
    onRun?.(r);
  }
  const wallSeconds = (performance.now() - started) / 1000;
  const requests = runs.reduce((n, r) => n + r.overall.requests, 0);
  return ok({
    scenario: { file: s.file, durationS: s.durationS, mode: s.mode, seed: s.seed, sloMs: s.sloMs, traffic: trafficText(s), balancers: s.balancers },
    machine: { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, node: process.version },
    wallSeconds, simulatedRequestsPerSecond: requests / Math.max(wallSeconds, 1e-9), runs,
  });
}
