import type { QueueReading } from './decide.js';

/** What one model server's /metrics says about its work (vLLM's names). */
export interface PodWork {
  /** Requests in the running batch, summed over the models it serves. */
  readonly running: number;
  /** Requests queued behind the batch, summed over the models. */
  readonly waiting: number;
  /** The fullest KV cache (0–1); null when not reported. */
  readonly kvCacheUsage: number | null;
}

/** One pod's work as its metrics say; undefined when the text has none of the gauges. */
export function parseVllmWork(text: string): PodWork | undefined {
  let running: number | undefined;
  let waiting: number | undefined;
  let kv: number | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^(vllm:num_requests_running|vllm:num_requests_waiting|vllm:kv_cache_usage_perc|vllm:gpu_cache_usage_perc)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    if (!Number.isFinite(v) || v < 0) continue;
    // Older vLLM calls the cache gauge gpu_cache_usage_perc.
    if (m[1] === 'vllm:num_requests_running') running = (running ?? 0) + v;
    else if (m[1] === 'vllm:num_requests_waiting') waiting = (waiting ?? 0) + v;
    else kv = Math.max(kv ?? 0, Math.min(1, v));
  }
  return running === undefined && waiting === undefined && kv === null ? undefined : { running: running ?? 0, waiting: waiting ?? 0, kvCacheUsage: kv };
}

/** Where a service's model servers are: address and the port serving vLLM's /metrics. */
export type PodAddresses = (service: string) => readonly { readonly address: string; readonly port: number }[];

/** Why a pod has no reading: no answer in time, an HTTP error, no vLLM gauges in its text, no connection. */
export type ScrapeProblem = 'timeout' | 'http-error' | 'no-metrics' | 'unreachable';

/** One scrape of a service's pods: each pod's work, undefined where it did not answer, and then why not (in words too). */
export type PodScrape = (service: string) => Promise<{ readonly at: number; readonly pods: readonly { readonly address: string; readonly port: number; readonly work: PodWork | undefined; readonly problem?: { readonly kind: ScrapeProblem; readonly text: string } }[] }>;

/**
 * Reads `/metrics` of every pod of a service at once, each within `timeoutMs`. A pod that does not answer, answers
 * with an error, or reports none of vLLM's gauges has no reading (never an idle one), and says why. A scrape of
 * the same service begun within `reuseMs` (default 500) is shared: one decision reads the queues and, for a
 * scale-down, the per-pod load, from one scrape.
 */
export function createPodScrape(o: { pods: PodAddresses; timeoutMs?: number; reuseMs?: number; now?: () => number }): PodScrape {
  const timeoutMs = o.timeoutMs ?? 1_000;
  const reuseMs = o.reuseMs ?? 500;
  const now = o.now ?? Date.now;
  const recent = new Map<string, { at: number; scrape: ReturnType<PodScrape> }>();
  return (service) => {
    const at = now();
    const held = recent.get(service);
    if (held && at - held.at < reuseMs) return held.scrape;
    for (const [k, v] of recent) if (at - v.at >= reuseMs) recent.delete(k);
    const scrape = scrapeOnce(service, at);
    recent.set(service, { at, scrape });
    return scrape;
  };
  async function scrapeOnce(service: string, at: number): ReturnType<PodScrape> {
    const pods = await Promise.all(o.pods(service).map(async (p) => {
      let work: PodWork | undefined;
      let problem: { kind: ScrapeProblem; text: string } | undefined;
      try {
        const host = p.address.includes(':') ? `[${p.address}]` : p.address;
        const res = await fetch(`http://${host}:${p.port}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
        if (res.ok) {
          work = parseVllmWork(await res.text());
          if (!work) problem = { kind: 'no-metrics', text: 'no vLLM gauges in /metrics' };
        } else problem = { kind: 'http-error', text: `/metrics answered HTTP ${res.status}` };
      } catch (e) {
        const err = e as { name?: string; cause?: { code?: string } };
        problem = err.name === 'TimeoutError' ? { kind: 'timeout', text: `no answer within ${timeoutMs} ms` } : { kind: 'unreachable', text: `cannot reach /metrics (${err.cause?.code ?? err.name ?? 'error'})` };
      }
      return { address: p.address, port: p.port, work, ...(problem !== undefined && { problem }) };
    }));
    return { at, pods };
  }
}

/**
 * The queue signal of a service from one scrape of its pods: waiting requests summed, KV-cache usage averaged
 * over the pods that answered. A pod that does not answer is left out; with no pod answering there is no reading.
 */
export function createQueueReader(scrape: PodScrape): (service: string) => Promise<QueueReading | undefined> {
  return async (service) => {
    const { at, pods } = await scrape(service);
    const answered = pods.flatMap((p) => (p.work ? [p.work] : []));
    if (answered.length === 0) return undefined;
    const kv = answered.filter((r) => r.kvCacheUsage !== null);
    return {
      at, pods: answered.length, waiting: answered.reduce((n, r) => n + r.waiting, 0),
      kvCacheUsage: kv.length === 0 ? null : kv.reduce((n, r) => n + r.kvCacheUsage!, 0) / kv.length,
    };
  };
}

/**
 * Requests in flight on each pod of a service (running plus waiting, as the pod itself counts them across every
 * Envoy), by address; pods that did not answer are absent.
 */
export function createPodLoadReader(scrape: PodScrape): (service: string) => Promise<ReadonlyMap<string, number>> {
  return async (service) => new Map((await scrape(service)).pods.flatMap((p) => (p.work ? [[p.address, p.work.running + p.work.waiting] as const] : [])));
}
