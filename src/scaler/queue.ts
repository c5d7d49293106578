import type { QueueReading } from './decide.js';

/** One pod's queue as its metrics say; undefined when the text has neither gauge. */
export function parseVllmQueue(text: string): { waiting: number; kvCacheUsage: number | null } | undefined {
  let waiting: number | undefined;
  let kv: number | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^(vllm:num_requests_waiting|vllm:kv_cache_usage_perc|vllm:gpu_cache_usage_perc)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    if (!Number.isFinite(v) || v < 0) continue;
    // Summed over the models a server serves; the cache as its fullest (older vLLM calls it gpu_cache_usage_perc).
    if (m[1] === 'vllm:num_requests_waiting') waiting = (waiting ?? 0) + v;
    else kv = Math.max(kv ?? 0, Math.min(1, v));
  }
  return waiting === undefined && kv === null ? undefined : { waiting: waiting ?? 0, kvCacheUsage: kv };
}

/** Where a service's model servers are: address and the port serving vLLM's /metrics. */
export type PodAddresses = (service: string) => readonly { readonly address: string; readonly port: number }[];

/**
 * Reads the queue signal of a service from its pods' `/metrics` (vLLM's names), all at once, each within
 * `timeoutMs`: waiting requests summed, KV-cache usage averaged over the pods that answered. A pod that does
 * not answer is left out (never read as an empty queue; with no pod answering there is no reading).
 */
export function createQueueReader(o: { pods: PodAddresses; timeoutMs?: number; now?: () => number }): (service: string) => Promise<QueueReading | undefined> {
  const timeoutMs = o.timeoutMs ?? 1_000;
  const now = o.now ?? Date.now;
  return async (service) => {
    const pods = o.pods(service);
    const at = now();
    const readings = await Promise.all(pods.map(async (p) => {
      try {
        const host = p.address.includes(':') ? `[${p.address}]` : p.address;
        const res = await fetch(`http://${host}:${p.port}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
        return res.ok ? parseVllmQueue(await res.text()) : undefined;
      } catch {
        return undefined;
      }
    }));
    const answered = readings.filter((r): r is NonNullable<typeof r> => r !== undefined);
    if (answered.length === 0) return undefined;
    const kv = answered.filter((r) => r.kvCacheUsage !== null);
    return {
      at, pods: answered.length, waiting: answered.reduce((n, r) => n + r.waiting, 0),
      kvCacheUsage: kv.length === 0 ? null : kv.reduce((n, r) => n + r.kvCacheUsage!, 0) / kv.length,
    };
  };
}
