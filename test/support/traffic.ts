import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { createRandom } from '../../src/simulate/random.js';
import { DEFAULT_ENGINE, type EngineParams } from '../../src/sim/engine.js';
import { DEFAULT_SIM, startSimServer, type SimServer } from '../../src/sim/server.js';
import { freePort } from './processes.js';

/** The model the test simulators serve. */
export const SIM_MODEL = 'sim-model';

/** A vLLM simulator on loopback, with what its /metrics says. */
export interface TestSim {
  readonly server: SimServer;
  readonly port: number;
  /** Requests it has taken: finished, aborted, running and queued. */
  started(): Promise<number>;
  /** Requests running or queued. */
  inFlight(): Promise<number>;
  /** Requests that ran to the end. */
  finished(): Promise<number>;
  close(): Promise<void>;
}

/** A simulator's /metrics as a map of `name` (or `name:finished_reason`) to value. */
export async function metricsOf(port: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^(vllm:[a-z_]+)(\{[^}]*\})? (\S+)$/gm)) {
    const reason = /finished_reason="(\w+)"/.exec(m[2] ?? '')?.[1];
    const key = reason ? `${m[1]}:${reason}` : m[1]!;
    out.set(key, (out.get(key) ?? 0) + Number(m[3]));
  }
  return out;
}

/** vLLM simulators as pods: each on its own loopback address, all on one port (as pod IPs share a port). */
export interface SimPods {
  readonly port: number;
  readonly sims: SimServer[];
}

/**
 * How a test simulator differs from the default engine. Test pods run 3× slower than the preset (a lone
 * request's step ≈ 10 ms instead of ≈ 3 ms), so that requests overlap enough to be seen in flight.
 */
export interface TestEngine {
  /** Every step this many times longer than the preset's (default 3). */
  readonly slowdown?: number;
  /** vLLM's max_num_seqs (default the preset's). */
  readonly maxNumSeqs?: number;
}

function testEngine(e: TestEngine): EngineParams {
  return { spec: { ...DEFAULT_ENGINE.spec, ...(e.maxNumSeqs !== undefined && { maxNumSeqs: e.maxNumSeqs }) }, slowdown: e.slowdown ?? 3 };
}

/** Starts one simulator per address (127.0.0.0/8), on a port free on all of them. */
export async function startSimPods(addresses: readonly string[], engine: TestEngine = {}): Promise<SimPods> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await freePort();
    const sims: SimServer[] = [];
    try {
      for (const address of addresses) sims.push(await startSimServer({ ...DEFAULT_SIM, model: SIM_MODEL, engine: testEngine(engine) }, address, port));
      return { port, sims };
    } catch {
      await Promise.all(sims.map((s) => s.close()));
    }
  }
  throw new Error('no common free port on the pod addresses');
}

/** Starts a simulator on 127.0.0.1 with `engine` changes (e.g. a slower pod). */
export async function startTestSim(engine: TestEngine = {}): Promise<TestSim> {
  const server = await startSimServer({ ...DEFAULT_SIM, model: SIM_MODEL, engine: testEngine(engine) }, '127.0.0.1', 0);
  const m = () => metricsOf(server.port);
  return {
    server,
    port: server.port,
    async started() {
      const x = await m();
      return (x.get('vllm:request_success_total:length') ?? 0) + (x.get('vllm:request_success_total:abort') ?? 0) + (x.get('vllm:num_requests_running') ?? 0) + (x.get('vllm:num_requests_waiting') ?? 0);
    },
    async inFlight() {
      const x = await m();
      return (x.get('vllm:num_requests_running') ?? 0) + (x.get('vllm:num_requests_waiting') ?? 0);
    },
    finished: async () => (await m()).get('vllm:request_success_total:length') ?? 0,
    close: () => server.close(),
  };
}

/** One endpoint of an endpoints file, as the file spells it. */
export interface FileEndpoint {
  readonly port: number;
  readonly zone?: string;
  readonly ready?: boolean;
  readonly serving?: boolean;
  readonly terminating?: boolean;
}

/** Writes an endpoints file atomically (a watcher never sees half of it). */
export function writeEndpointsFile(file: string, doc: object): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
  fs.writeFileSync(tmp, stringify(doc));
  fs.renameSync(tmp, file);
}

/** An endpoints file service on loopback simulators. */
export function fileService(name: string, endpoints: readonly FileEndpoint[], extra: Record<string, unknown> = {}): object {
  return { name, endpoints: endpoints.map((e) => ({ address: '127.0.0.1', ...e })), ...extra };
}

/** Results of a traffic run. */
export interface TrafficResult {
  ok: number;
  failed: { status?: number; error: string }[];
  /** Milliseconds, one per successful request, in completion order. */
  latencies: number[];
}

/**
 * Closed-loop clients: `concurrency` loops, each sending a completion to `url` (with `headers`) as soon as the last
 * one finished, until stopped, and in any case after `maxMs` (default 60 s) or 100 failures, so a test that
 * fails half-way never leaves traffic running. Streaming requests are read to `[DONE]`; anything else fails.
 */
export function startTraffic(url: string, o: { concurrency: number; headers?: Record<string, string>; maxTokens?: number; stream?: boolean; maxMs?: number }): { stop(): Promise<TrafficResult>; result: TrafficResult } {
  const result: TrafficResult = { ok: 0, failed: [], latencies: [] };
  let stopped = false;
  const deadline = performance.now() + (o.maxMs ?? 60_000);
  const loop = async () => {
    while (!stopped && performance.now() < deadline && result.failed.length < 100) {
      const start = performance.now();
      const r = await completion(url, { ...o, headers: o.headers ?? {} });
      if (r.ok) {
        result.ok++;
        result.latencies.push(performance.now() - start);
      } else result.failed.push(r);
    }
  };
  const loops = Array.from({ length: o.concurrency }, loop);
  return {
    result,
    async stop() {
      stopped = true;
      await Promise.all(loops);
      return result;
    },
  };
}

/**
 * Open-loop load: requests arrive as a Poisson process at `rps` (seeded, so a run repeats), each sent whether or
 * not earlier ones have been answered, as independent users send them; none waits for another. A request not
 * answered within `timeoutMs` fails, as does any arrival while `maxOutstanding` are already open (the load
 * generator's own bound, reported as such). Arrivals missed by a late timer are sent at once, so the rate holds.
 */
export function startOpenLoop(url: string, o: { rps: number; seed?: number; headers?: Record<string, string>; maxTokens?: number; timeoutMs?: number; maxOutstanding?: number }): { stop(): Promise<TrafficResult>; result: TrafficResult } {
  const result: TrafficResult = { ok: 0, failed: [], latencies: [] };
  const random = createRandom(o.seed ?? 1);
  const pending = new Set<Promise<void>>();
  const started = performance.now();
  let next = started;
  let stopped = false;
  const send = () => {
    if (pending.size >= (o.maxOutstanding ?? 5_000)) {
      result.failed.push({ error: `load generator: more than ${o.maxOutstanding ?? 5_000} requests outstanding` });
      return;
    }
    const t = performance.now();
    const p = completion(url, { headers: o.headers ?? {}, maxTokens: o.maxTokens ?? 5, signal: AbortSignal.timeout(o.timeoutMs ?? 30_000) }).then((r) => {
      if (r.ok) {
        result.ok++;
        result.latencies.push(performance.now() - t);
      } else result.failed.push(r);
      pending.delete(p);
    });
    pending.add(p);
  };
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    const now = performance.now();
    while (!stopped && next <= now) {
      send();
      next += random.exponential(1000 / o.rps);
    }
    if (!stopped) timer = setTimeout(tick, Math.max(0, next - performance.now()));
  };
  tick();
  return {
    result,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await Promise.all(pending);
      return result;
    },
  };
}

/** One completion request through `url`; `ok` only for a 200 with a whole answer (SSE: through `[DONE]`). */
export async function completion(url: string, o: { headers?: Record<string, string>; maxTokens?: number; stream?: boolean; signal?: AbortSignal }): Promise<{ ok: true; text: string } | { ok: false; status?: number; error: string }> {
  try {
    const r = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...o.headers },
      body: JSON.stringify({ model: SIM_MODEL, prompt: 'Hello', max_tokens: o.maxTokens ?? 5, stream: o.stream ?? false }),
      ...(o.signal && { signal: o.signal }),
    });
    const text = await r.text();
    if (r.status !== 200) return { ok: false, status: r.status, error: text.slice(0, 300) };
    if (o.stream && !text.trimEnd().endsWith('data: [DONE]')) return { ok: false, status: 200, error: `stream cut: ${text.slice(-200)}` };
    return { ok: true, text };
  } catch (e) {
    return { ok: false, error: e instanceof Error ? `${e.message} ${String((e as { cause?: unknown }).cause ?? '')}` : String(e) };
  }
}
