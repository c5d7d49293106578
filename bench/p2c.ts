import type { LoadBalancing } from '../src/model/model.js';
import { envoyVersion } from '../test/support/envoy.js';
import { startP2cLab, type PolicyRun } from '../test/support/p2c.js';
import { fmt, median, pct } from './common.js';

/**
 * Power of two choices through real Envoy: one upstream `slowFactor`× slower, open-loop Poisson arrivals at `rps`
 * (requests arrive whether or not earlier ones are answered, as real users send them), least_request
 * (inferplane's default) and round_robin alternating within one run (A B A B), so both see the same machine.
 * Prints latency, failures, the slow upstream's share of requests and everyone's mean in flight.
 */
export async function p2c(o: { rounds: number; seconds: number; rps: number; slowdown: number; maxTokens: number; upstreams: number; slowFactor: number }): Promise<void> {
  console.log(`\npower of two choices through Envoy ${envoyVersion()} (2 workers): ${o.upstreams} vLLM simulators (${o.slowdown}× slower than the default preset), the first ${o.slowFactor}× slower still; open-loop Poisson arrivals at ${o.rps} requests/s, ${o.maxTokens} tokens per answer; ${o.rounds} × ${o.seconds} s per policy, alternating`);
  const lab = await startP2cLab({ upstreams: o.upstreams, slowFactor: o.slowFactor, slowdown: o.slowdown, concurrency: 1, maxTokens: o.maxTokens, envoyConcurrency: 2 });
  const runs: Record<LoadBalancing, PolicyRun[]> = { 'least-request': [], 'round-robin': [] };
  try {
    for (let round = 1; round <= o.rounds; round++) {
      for (const policy of ['least-request', 'round-robin'] as const) {
        const r = await lab.run(policy, o.seconds * 1000, { rps: o.rps, seed: round });
        runs[policy].push(r);
        console.log(`  round ${round} ${policy.padEnd(13)}: ${fmt(r.requests / o.seconds)} req/s, p50 ${fmt(pct(r.latencies, 50))} ms, p99 ${fmt(pct(r.latencies, 99))} ms, mean ${fmt(r.mean)} ms; slow upstream took ${fmt(r.share[0]! * 100)}% of requests; mean in flight ${r.inFlight.map((x) => fmt(x)).join(' / ')} (slow first); failed ${r.failed}`);
      }
    }
  } finally {
    await lab.stop();
  }
  const med = (p: LoadBalancing, f: (r: PolicyRun) => number) => median(runs[p].map(f));
  const row = (p: LoadBalancing) => ({ failed: med(p, (r) => r.failed), rps: med(p, (r) => r.requests / o.seconds), p50: med(p, (r) => pct(r.latencies, 50)), p99: med(p, (r) => pct(r.latencies, 99)), mean: med(p, (r) => r.mean), slow: med(p, (r) => r.share[0]!), flightSlow: med(p, (r) => r.inFlight[0]!), flightFast: med(p, (r) => r.inFlight.slice(1).reduce((a, b) => a + b, 0) / (r.inFlight.length - 1)) });
  const lr = row('least-request');
  const rr = row('round-robin');
  for (const [name, r] of [['least_request', lr], ['round_robin', rr]] as const) {
    console.log(`  median ${name.padEnd(13)}: ${fmt(r.rps)} req/s answered, ${fmt(r.failed)} failed, p50 ${fmt(r.p50)} ms, p99 ${fmt(r.p99)} ms, mean ${fmt(r.mean)} ms; slow upstream ${fmt(r.slow * 100)}% of requests, in flight ${fmt(r.flightSlow)} on it vs ${fmt(r.flightFast)} per fast one`);
  }
  console.log(`  least_request / round_robin: answered ×${fmt(lr.rps / rr.rps, 2)}, p50 ×${fmt(lr.p50 / rr.p50, 2)}, p99 ×${fmt(lr.p99 / rr.p99, 2)}, mean ×${fmt(lr.mean / rr.mean, 2)}`);
}
