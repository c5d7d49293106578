import type { Logger } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import { ACTIVE_GAUGE, activeByCluster, type FleetStats, type ReportedGauge } from './stats.js';

/** One Envoy to scrape: its node id (so push and pull agree on who it is) and its admin base URL. */
export interface ScrapeTarget {
  readonly nodeId: string;
  readonly url: string;
}

/** Options of {@link createStatsScraper}. */
export interface ScraperOptions {
  /** Read each round: today the connected xDS nodes that offer `inferplane.io/stats-url` in their metadata. */
  readonly targets: () => readonly ScrapeTarget[];
  readonly stats: FleetStats;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly now?: () => number;
  /** A scrape slower than this is abandoned (the Envoy's previous sample stands until it expires). Default 800 ms. */
  readonly timeoutMs?: number;
  /** Scrapes in flight at once. Default 64. */
  readonly concurrency?: number;
  /** Largest response read. Default 4 MiB. */
  readonly maxBytes?: number;
}

/** Scrapes Envoy admin endpoints into the fleet stats. */
export interface StatsScraper {
  /** Scrapes every target once; resolves when all are done or abandoned. */
  scrape(): Promise<void>;
}

/** The admin query: only the active-request gauges, as JSON (Envoy's `/stats?format=json&filter=<regex>`). */
export const SCRAPE_PATH = `/stats?format=json&filter=${encodeURIComponent(`^cluster\\..*\\.${ACTIVE_GAUGE}$`)}`;

/**
 * Reads Envoy's `/stats?format=json` answer (`{"stats": [{"name", "value"}, ...]}`; histograms and text stats
 * are skipped) into gauges. Throws with what was wrong when the body is not that shape.
 */
export function parseEnvoyStatsJson(body: string): ReportedGauge[] {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    throw new Error('the body is not JSON');
  }
  const stats = (doc as { stats?: unknown })?.stats;
  if (!Array.isArray(stats)) throw new Error('the body has no "stats" array');
  const out: ReportedGauge[] = [];
  for (const s of stats as { name?: unknown; value?: unknown }[]) {
    if (typeof s?.name !== 'string' || s.value === undefined) continue;
    const value = typeof s.value === 'number' ? s.value : typeof s.value === 'string' ? Number(s.value) : NaN;
    out.push({ name: s.name, labels: {}, value });
  }
  return out;
}

/**
 * Pull mode, for fleets that cannot push stats: every round, GETs {@link SCRAPE_PATH} from each target's admin
 * endpoint and records the active-request gauges under the target's node id, exactly as a pushed report would
 * be (implausible gauges refused, a target that fails simply stops contributing once its last sample
 * expires, one that disconnected is forgotten at once). A target that starts or stops failing is logged once
 * per change, not every round.
 */
export function createStatsScraper(o: ScraperOptions): StatsScraper {
  const now = o.now ?? Date.now;
  const timeoutMs = o.timeoutMs ?? 800;
  const concurrency = o.concurrency ?? 64;
  const maxBytes = o.maxBytes ?? 4 * 1024 * 1024;
  const outcomes = o.metrics.counter('inferplane_stats_scrapes_total', 'Envoy admin scrapes, by outcome', ['outcome'], [{ outcome: 'recorded' }, { outcome: 'failed' }]);
  const failing = new Map<string, string>();
  let scraped = new Set<string>();

  async function one(t: ScrapeTarget): Promise<void> {
    try {
      const url = new URL(SCRAPE_PATH, t.url.endsWith('/') ? t.url : `${t.url}/`);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`unsupported scheme ${url.protocol}`);
      const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      const text = await res.text();
      if (text.length > maxBytes) throw new Error(`a ${text.length}-byte answer is over the ${maxBytes}-byte limit`);
      const { active, rejected, rejectedClusters } = activeByCluster(parseEnvoyStatsJson(text));
      if (rejected.length > 0) o.log.warn('refused implausible gauges', { node: t.nodeId, url: t.url, rejected });
      outcomes.inc({ outcome: o.stats.record(t.nodeId, now(), active, { keep: rejectedClusters }) });
      scraped.add(t.nodeId);
      if (failing.delete(t.nodeId)) o.log.info('scraping Envoy stats works again', { node: t.nodeId, url: t.url });
    } catch (e) {
      const reason = e instanceof Error ? (e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : e.message) : String(e);
      outcomes.inc({ outcome: 'failed' });
      if (failing.get(t.nodeId) !== reason) o.log.warn('cannot scrape Envoy stats', { node: t.nodeId, url: t.url, error: reason });
      failing.set(t.nodeId, reason);
    }
  }

  return {
    async scrape() {
      const seen = new Set<string>();
      // One scrape per node, however many streams it has open.
      const queue = o.targets().filter((t) => !seen.has(t.nodeId) && seen.add(t.nodeId));
      for (const id of failing.keys()) if (!seen.has(id)) failing.delete(id);
      // A node that left (it reconnected to another replica, which scrapes it now) is not counted here too.
      for (const id of scraped) if (!seen.has(id)) o.stats.forget(id);
      scraped = new Set();
      const workers = Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
        for (let t = queue.shift(); t; t = queue.shift()) await one(t);
      });
      await Promise.all(workers);
    },
  };
}
