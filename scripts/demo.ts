/**
 * `npm run demo`: the whole loop on this machine, no Docker, no cluster. Starts inferplane (with the scaler as a
 * dry run), the real Envoy the test setup installs, and vLLM simulators of which one is slow; sends open-loop load
 * (Poisson arrivals at a set rate, as real users send requests, at a rate where round robin overloads the slow
 * simulator) through Envoy twice, with least_request (two random choices) and with round robin; prints what each policy did, what
 * `inferplane status` shows and why the scaler would resize the fleet. `--seconds N` per policy (default 15).
 * The status page (admin `/`) is live throughout; `--keep` keeps everything running after the summary, for it,
 * until Ctrl-C.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startP2cLab, type PolicyRun } from '../test/support/p2c.js';
import { ROOT } from '../test/support/processes.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '15' }, upstreams: { type: 'string', default: '4' }, keep: { type: 'boolean', default: false } } });
const seconds = Number(values.seconds);
const upstreams = Number(values.upstreams);
if (!(seconds > 0) || !Number.isInteger(upstreams) || upstreams < 2) throw new Error('--seconds must be positive and --upstreams a whole number of at least 2');
// Simulators 12× slower than the default preset (fast ones ≈ 99 requests/s at a full batch, the slow one ≈ 33):
// round robin sends each a 1/upstreams share, which overloads the slow one above ≈ 33 × upstreams requests/s;
// two choices hold to ≈ 99 × (upstreams − 1) + 33. The rate sits between: half of least request's capacity.
const SLOWDOWN = 12;
const rps = Math.round((99 * (upstreams - 1) + 33) * 0.6);

// The pinned Envoy, installed into .envoy/ as `npm test` does (a no-op when it is there).
execFileSync(process.execPath, [path.join(ROOT, 'test/setup/envoy.mjs')], { stdio: 'inherit' });
const status = (admin: string, ...view: string[]) =>
  execFileSync(process.execPath, ['--import=tsx', path.join(ROOT, 'src/main.ts'), 'status', ...view, '--admin', admin], { encoding: 'utf8', cwd: ROOT });

console.log(`\nStarting inferplane, Envoy and ${upstreams} vLLM simulators (the first 3× slower)…`);
const lab = await startP2cLab({ upstreams, slowFactor: 3, slowdown: SLOWDOWN, concurrency: 1, maxTokens: 50, scalerPolicy: path.join(ROOT, 'examples/demo-scaling-policy.yaml') });
console.log(`\nStatus page (live): ${lab.admin}/ — open it in a browser to watch the nodes, the endpoints and the scaler.`);
try {
  const runs: PolicyRun[] = [];
  for (const policy of ['least-request', 'round-robin'] as const) {
    console.log(`\n${policy}: ${seconds} s of open-loop load through Envoy, ${rps} requests/s…`);
    runs.push(await lab.run(policy, seconds * 1000, { rps }));
  }
  const pct = (r: PolicyRun, p: number) => r.latencies[Math.min(r.latencies.length - 1, Math.ceil((p / 100) * r.latencies.length) - 1)] ?? NaN;
  console.log('\nWhat each policy did (upstream 0 is the slow one):\n');
  console.log(['policy         requests  failed  p50 ms  p99 ms  share of requests per upstream', ...runs.map((r) =>
    `${r.policy.padEnd(13)}  ${String(r.requests).padStart(8)}  ${String(r.failed).padStart(6)}  ${pct(r, 50).toFixed(0).padStart(6)}  ${pct(r, 99).toFixed(0).padStart(6)}  ${r.share.map((s) => `${(s * 100).toFixed(0)}%`).join(' ')}`)].join('\n'));
  const [p2c, rr] = runs as [PolicyRun, PolicyRun];
  console.log(`\nWith two random choices the slow simulator took ${(p2c.share[0]! * 100).toFixed(0)}% of the requests, with round robin ${(rr.share[0]! * 100).toFixed(0)}%: more than`);
  console.log(`it can serve, so its queue grows for as long as the load lasts (in flight on it: ${rr.inFlight[0]!.toFixed(0)} against ${p2c.inFlight[0]!.toFixed(0)}). p99 least-request / round-robin: ×${(pct(p2c, 99) / pct(rr, 99)).toFixed(2)}.`);
  console.log('Envoy took each change of policy from inferplane\'s endpoints file within a second.\n');
  console.log(`$ inferplane status nodes --admin ${lab.admin}\n${status(lab.admin, 'nodes')}`);
  console.log(`$ inferplane status scaler --admin ${lab.admin}\n${status(lab.admin, 'scaler')}`);
  console.log(`$ inferplane status explain llm --admin ${lab.admin}\n${status(lab.admin, 'explain', 'llm')}`);
  if (values.keep) {
    console.log(`Still running for the status page at ${lab.admin}/ — Ctrl-C stops everything.`);
    await new Promise((resolve) => process.once('SIGINT', resolve));
  }
} finally {
  await lab.stop();
}
