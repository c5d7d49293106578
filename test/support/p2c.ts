import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { LoadBalancing } from '../../src/model/model.js';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { eventually } from './harness.js';
import { freePort, inferplane, type Child } from './processes.js';
import { completion, fileService, startOpenLoop, startTestSim, startTraffic, writeEndpointsFile, type TestSim } from './traffic.js';

/** The load of a run: closed-loop clients (each sends again when answered), or open-loop Poisson arrivals. */
export type P2cLoad = { readonly concurrency: number } | { readonly rps: number; readonly seed?: number };

/** What one policy did in one run. */
export interface PolicyRun {
  readonly policy: LoadBalancing;
  readonly requests: number;
  readonly failed: number;
  /** Milliseconds, ascending. */
  readonly latencies: readonly number[];
  readonly mean: number;
  /** Share of requests each upstream took, the slow one first. */
  readonly share: readonly number[];
  /** Mean requests in flight at each upstream (sampled every 50 ms), the slow one first. */
  readonly inFlight: readonly number[];
}

/** Options of {@link startP2cLab}. */
export interface P2cOptions {
  readonly upstreams: number;
  /** How much slower the first upstream decodes and prefills. */
  readonly slowFactor: number;
  /** Every simulator's slowdown against the engine preset (default 3: see TestEngine). */
  readonly slowdown?: number;
  /** Closed-loop clients at this concurrency, or (with `rps`) none: see {@link P2cLoad}. */
  readonly concurrency: number;
  /** Tokens per answer. */
  readonly maxTokens: number;
  readonly envoyConcurrency?: number;
  /** A scaling policy file: serve also runs the scaler, as a dry run on the served endpoints. */
  readonly scalerPolicy?: string;
}

/**
 * Real Envoy (the front-proxy bootstrap) fed by inferplane, in front of vLLM simulators of which the first is
 * `slowFactor` times slower: closed-loop clients at fixed concurrency (or, per run, open-loop Poisson arrivals at a
 * set rate), the service switched between least_request and round_robin through the endpoints file. Each `run`
 * measures one policy for a while.
 */
export async function startP2cLab(o: P2cOptions): Promise<{ run(policy: LoadBalancing, ms: number, load?: P2cLoad): Promise<PolicyRun>; stop(): Promise<void>; readonly admin: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-p2c-'));
  const file = path.join(dir, 'endpoints.yaml');
  const sims: TestSim[] = await Promise.all(Array.from({ length: o.upstreams }, (_, i) => startTestSim({ slowdown: (o.slowdown ?? 3) * (i === 0 ? o.slowFactor : 1) })));
  const [xdsPort, listenerPort] = [await freePort(), await freePort()];
  const write = (policy: LoadBalancing) => writeEndpointsFile(file, {
    listener: { name: 'ingress', address: '127.0.0.1', port: listenerPort },
    services: [fileService('llm', sims.map((s) => ({ port: s.port })), { settings: { loadBalancing: policy, retries: { attempts: 0 } } })],
  });
  write('least-request');
  let cp: Child | undefined;
  let envoy: RunningEnvoy | undefined;
  let admin = '';
  const stop = async () => {
    await envoy?.stop();
    await cp?.stop('SIGKILL');
    await Promise.all(sims.map((s) => s.close()));
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    cp = inferplane(['serve', '--endpoints', file, '--xds-address', `127.0.0.1:${xdsPort}`, '--admin-address', '127.0.0.1:0', ...(o.scalerPolicy ? ['--scaler', '--dry-run', '--policy', o.scalerPolicy] : [])]);
    admin = `http://${(await cp.logLine('inferplane serving'))['admin']}`;
    envoy = await startEnvoy({ bootstrap: 'front-proxy.yaml', xdsPort, concurrency: o.envoyConcurrency ?? 1 });
  } catch (e) {
    await stop();
    throw e;
  }
  const url = `http://127.0.0.1:${listenerPort}/v1/completions`;
  const headers = { 'x-model': 'llm' };
  await eventually(async () => (await completion(url, { headers })).ok, 'a completion through Envoy', 15_000);
  const policyOf = async () => {
    const dump = await envoy!.adminJson('/config_dump?resource=dynamic_active_clusters');
    return dump.configs[0]?.cluster?.load_balancing_policy?.policies?.[0]?.typed_extension_config?.name as string | undefined;
  };
  return {
    admin,
    async run(policy, ms, load = { concurrency: o.concurrency }) {
      write(policy);
      const want = policy === 'least-request' ? 'envoy.load_balancing_policies.least_request' : 'envoy.load_balancing_policies.round_robin';
      await eventually(async () => (await policyOf()) === want, `Envoy on ${policy}`, 10_000);
      const started = await Promise.all(sims.map((s) => s.started()));
      const samples = sims.map(() => [] as number[]);
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const counts = await Promise.all(sims.map((s) => s.inFlight()));
          counts.forEach((c, i) => samples[i]!.push(c));
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      const traffic = 'rps' in load
        ? startOpenLoop(url, { rps: load.rps, seed: load.seed ?? 1, headers, maxTokens: o.maxTokens, timeoutMs: 30_000 })
        : startTraffic(url, { concurrency: load.concurrency, headers, maxTokens: o.maxTokens, maxMs: ms + 30_000 });
      await new Promise((r) => setTimeout(r, ms));
      const result = await traffic.stop();
      sampling = false;
      await sampler;
      const taken = (await Promise.all(sims.map((s) => s.started()))).map((n, i) => n - started[i]!);
      const total = taken.reduce((a, b) => a + b, 0);
      const lat = [...result.latencies].sort((a, b) => a - b);
      return {
        policy,
        requests: result.ok,
        failed: result.failed.length,
        latencies: lat,
        mean: lat.reduce((a, b) => a + b, 0) / lat.length,
        share: taken.map((n) => n / total),
        inFlight: samples.map((xs) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)),
      };
    },
    stop,
  };
}
