import type { ServiceWeights } from '../balance/controller.js';
import http from 'node:http';
import { listen, type ListeningServer } from './http.js';
import type { SnapshotCache } from '../xds/cache.js';
import { TYPE_SHORT } from '../xds/resources.js';
import type { XdsServer } from '../xds/server.js';
import type { Metrics } from './metrics.js';
import type { Model } from '../model/model.js';
import { healthOf } from '../translate/endpoint.js';
import type { Mode } from '../scaler/decide.js';
import { ForceError, type ScalerStatusFilter } from '../scaler/scaler.js';
import { parseDuration } from '../model/validate.js';
import { syncState, type SyncState } from '../xds/stream.js';
import { STATUS_PAGE } from './status-page.js';

/** What the admin server reads; all of it is read at request time. */
export interface AdminOptions {
  readonly xds: Pick<XdsServer, 'nodes'>;
  readonly cache: SnapshotCache;
  readonly metrics: Metrics;
  /** Readiness: true once the first complete snapshot is set. */
  readonly ready: () => boolean;
  /** While not ready: why, when more is known than "no snapshot yet" (e.g. the endpoints file is invalid). */
  readonly notReadyReason?: () => string | undefined;
  /** Configuration refused while the last good one keeps serving (e.g. the endpoints file's problems). */
  readonly configProblems?: () => readonly string[] | undefined;
  /** Fleet active requests per served service, from Envoys' stats reports. */
  readonly fleet: () => FleetStatus;
  /** The scaler's status and recent decisions, when the scaler runs here. */
  readonly scaler?: (filter: ScalerStatusFilter) => unknown;
  /** The model being served, for `/status/services`. */
  readonly model?: () => Model | undefined;
  /** Forces a service's mode (`POST /scaler/mode`), when the scaler runs here; throws {@link ForceError}. */
  readonly forceMode?: (service: string, mode: Mode | 'auto', forMs?: number) => unknown;
  /** Load-aware endpoint weights per service, with why (`/status/weights`). */
  readonly weights?: () => Readonly<Record<string, ServiceWeights>>;
}

/** The largest request body the admin server reads (`POST /scaler/mode`). */
const MAX_BODY = 4096;

/** Whether a peer address is this host's loopback (IPv4, IPv6, or IPv4-mapped). */
export function isLoopback(address: string | undefined): boolean {
  return address !== undefined && (address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.'));
}

/** Endpoint counts by state, as Envoy is told: healthy, draining (terminating, still serving), not ready. */
export interface EndpointCounts {
  healthy: number;
  draining: number;
  notReady: number;
}

/** One row of `/status/services`. */
export interface ServiceSummary {
  readonly name: string;
  readonly ports: string[];
  readonly endpoints: EndpointCounts;
  /** By zone ('' for endpoints with no zone). */
  readonly zones: Record<string, EndpointCounts>;
  /** In-flight requests summed over the Envoys reporting stats; null when none report. */
  readonly activeRequests: number | null;
  readonly envoys: number;
}

/** Most rows one paged answer (`?limit=`) may ask for. */
export const MAX_PAGE = 1000;

/** What `/status/fleet` shows. */
export interface FleetStatus {
  readonly services: Record<string, { activeRequests: number; envoys: number; oldestReportAgeMs: number } | null>;
  /** Envoys, and other replicas forwarding the sums of theirs (`envoys` > 1). */
  readonly reporters: { nodeId: string; ageMs: number; envoys: number }[];
}

/** The running admin server. */
export type AdminServer = ListeningServer;

/** Names listed per stream and type by `/status/nodes` without `?node=`, and per type by `/status/snapshots` without `?type=`. */
export const STATUS_NAMES = 100;

/**
 * Serves, over plain HTTP: `/` (the status page, see src/observability/status-page.ts), `/healthz` (the process is up; `scaler`: whether the scaler runs here), `/readyz` (200 only once the first complete
 * snapshot is set, 503 before; `refused`: configuration refused since, while the last good one serves), `/status/nodes` (every connected stream: node id, cluster, stream kind,
 * per-type subscribed names (their count, and up to {@link STATUS_NAMES} of them; all with `?node=ID`, which
 * lists only that node's streams), sent and ACKed versions, pending nonce, last NACK, connected since; with
 * `?limit=&offset=&q=&outOfSync=1`, one page of streams, out-of-sync first, each type with its sync state),
 * `/status/services` (per served service: endpoints by state and zone, in-flight requests; paged like nodes),
 * `/status/snapshots` (per group: versions, and per type the resource count and up to {@link STATUS_NAMES}
 * resources with their versions; all of one type with `?type=cds|eds|lds|rds`), `/status/fleet` (in-flight requests per service
 * summed over the Envoys reporting stats; `?reporters=N`: the N stalest reporters and their total),
 * `/status/scaler` (role, policy in force or rejected, per-service replicas and the last decisions with their
 * inputs, newest first; `?service=ns/name&limit=N&timeline=N`) and `/metrics`
 * (Prometheus text). One write: `POST /scaler/mode` with a JSON body `{service, mode, for?}` forces a service's
 * mode (see {@link Scaler.force}); it is taken only from loopback (`kubectl port-forward`, `kubectl exec`), as
 * `application/json` (which a cross-site form cannot send), and answers 409 on a standby replica.
 */
export async function startAdminServer(host: string, port: number, o: AdminOptions): Promise<AdminServer> {
  const json = (res: http.ServerResponse, code: number, body: unknown) => {
    res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body, null, 2) + '\n');
  };
  async function forceMode(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (req.method !== 'POST') return json(res, 405, { error: `method ${req.method} not allowed; use POST with {"service": "...", "mode": "normal|surge|emergency|auto", "for": "10m"}` });
    if (!o.forceMode) return json(res, 404, { error: 'the scaler is not running in this process (serve --scaler)' });
    if (!isLoopback(req.socket.remoteAddress)) return json(res, 403, { error: 'modes are forced only from loopback (kubectl port-forward or kubectl exec into the pod)' });
    if (!String(req.headers['content-type']).startsWith('application/json')) return json(res, 415, { error: 'the body must be application/json' });
    let text = '';
    for await (const chunk of req) {
      text += String(chunk);
      if (text.length > MAX_BODY) return json(res, 413, { error: `the body is over ${MAX_BODY} bytes` });
    }
    let body: { service?: unknown; mode?: unknown; for?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
      if (typeof body !== 'object' || body === null) throw new Error('not an object');
    } catch {
      return json(res, 400, { error: 'the body is not a JSON object: {"service": "...", "mode": "normal|surge|emergency|auto", "for": "10m"}' });
    }
    if (typeof body.service !== 'string') return json(res, 400, { error: 'service: expected the service name as a string' });
    if (typeof body.mode !== 'string') return json(res, 400, { error: 'mode: expected normal, surge, emergency or auto' });
    let forMs: number | undefined;
    if (body.for !== undefined) {
      const d = parseDuration(body.for);
      if (!d.ok) return json(res, 400, { error: `for: ${d.error}` });
      forMs = d.value;
    }
    try {
      return json(res, 200, { service: body.service, mode: body.mode, state: (await o.forceMode(body.service, body.mode as Mode | 'auto', forMs)) ?? { mode: 'normal' } });
    } catch (e) {
      if (!(e instanceof ForceError)) throw e;
      return json(res, e.kind === 'standby' ? 409 : 400, { error: e.message });
    }
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    if (url.pathname === '/scaler/mode') return void forceMode(req, res).catch((e: unknown) => json(res, 500, { error: e instanceof Error ? e.message : String(e) }));
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: `method ${req.method} not allowed; use GET` });
    switch (url.pathname) {
      case '/healthz':
        return json(res, 200, { status: 'ok', scaler: o.scaler !== undefined });
      case '/readyz':
        if (!o.ready()) return json(res, 503, { status: 'not ready', reason: o.notReadyReason?.() ?? 'no complete snapshot yet' });
        // Ready, as the last good configuration serves; what was refused since is said beside it.
        return json(res, 200, { status: 'ready', ...(o.configProblems?.() && { refused: o.configProblems()!.slice(0, STATUS_NAMES) }) });
      case '/': {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:" });
        return res.end(STATUS_PAGE);
      }
      case '/status/nodes': {
        const page = paging(url);
        if (typeof page === 'string') return json(res, 400, { error: page });
        if (page) return json(res, 200, nodesPage(o, page, url.searchParams.get('outOfSync') === '1'));
        // One node in full; the fleet with a sample of each stream's names, so the answer stays small.
        const node = url.searchParams.get('node');
        return json(res, 200, { nodes: node === null ? o.xds.nodes({ maxNames: STATUS_NAMES }) : o.xds.nodes({ nodeId: node }) });
      }
      case '/status/services': {
        const page = paging(url) ?? { offset: 0, limit: STATUS_NAMES, q: '' };
        if (typeof page === 'string') return json(res, 400, { error: page });
        return json(res, 200, servicesPage(o, page));
      }
      case '/status/snapshots': {
        // Thousands of services make megabytes of names: a sample of each type unless one type is asked for.
        const only = url.searchParams.get('type');
        const shorts = Object.values(TYPE_SHORT) as string[];
        if (only !== null && !shorts.includes(only)) return json(res, 400, { error: `type=${only.slice(0, 20)}: not one of ${shorts.join(', ')}` });
        return json(res, 200, {
          groups: Object.fromEntries(o.cache.groups().map((g) => {
            const s = o.cache.get(g)!;
            const types = Object.entries(s.types).filter(([t]) => only === null || TYPE_SHORT[t as keyof typeof TYPE_SHORT] === only);
            return [g, {
              version: s.version,
              types: Object.fromEntries(types.map(([t, ts]) => [TYPE_SHORT[t as keyof typeof TYPE_SHORT], {
                version: ts.version,
                // What a SotW client subscribed to everything (an Envoy) holds and ACKs once in sync.
                wildcardVersion: ts.wildcardVersion,
                resourceCount: ts.resources.size,
                resources: [...ts.resources.values()].slice(0, only === null ? STATUS_NAMES : undefined).map((r) => ({ name: r.name, version: r.version })),
              }])),
            }];
          })),
        });
      }
      case '/status/fleet': {
        const cap = url.searchParams.get('reporters');
        if (cap !== null && !/^\d+$/.test(cap)) return json(res, 400, { error: `reporters must be a whole number, got "${cap.slice(0, 20)}"` });
        const fleet = o.fleet();
        if (cap === null) return json(res, 200, fleet);
        // The stalest first: those are the ones an operator looks for among thousands.
        const reporters = [...fleet.reporters].sort((a, b) => b.ageMs - a.ageMs);
        return json(res, 200, { services: fleet.services, reportersTotal: reporters.length, reporters: reporters.slice(0, Number(cap)) });
      }
      case '/status/scaler': {
        if (!o.scaler) return json(res, 404, { error: 'the scaler is not running in this process (serve --scaler)' });
        const limit = url.searchParams.get('limit');
        if (limit !== null && !/^[1-9]\d*$/.test(limit)) return json(res, 400, { error: `limit must be a positive whole number, got "${limit.slice(0, 20)}"` });
        const timeline = url.searchParams.get('timeline');
        if (timeline !== null && !/^\d+$/.test(timeline)) return json(res, 400, { error: `timeline must be a whole number of points, got "${timeline.slice(0, 20)}"` });
        const service = url.searchParams.get('service');
        return json(res, 200, o.scaler({ ...(service !== null && { service }), ...(limit !== null && { limit: Number(limit) }), ...(timeline !== null && { timeline: Number(timeline) }) }));
      }
      case '/status/weights': {
        const all = o.weights?.() ?? {};
        const service = url.searchParams.get('service');
        if (service === null) return json(res, 200, { services: all });
        return all[service] ? json(res, 200, { services: { [service]: all[service] } }) : json(res, 404, { error: `no load-aware weights for service "${service.slice(0, 200)}" (its settings need loadAwareWeights: true, and its pods must be served)` });
      }
      case '/metrics':
        return void o.metrics.render().then((text) => {
          res.writeHead(200, { 'content-type': o.metrics.contentType });
          res.end(text);
        }, (e: unknown) => json(res, 500, { error: `rendering metrics: ${e instanceof Error ? e.message : String(e)}` }));
      default:
        return json(res, 404, { error: `no such path ${url.pathname.slice(0, 100)}`, paths: ['/', '/healthz', '/readyz', '/status/nodes', '/status/services', '/status/snapshots', '/status/fleet', '/status/scaler', '/status/weights', '/metrics'] });
    }
  });
  return listen(server, host, port);
}

interface Page {
  readonly offset: number;
  readonly limit: number;
  /** Case-insensitive substring the rows' names must contain ('' for all). */
  readonly q: string;
}

/** The paging parameters, undefined when none is given, or what is wrong with them. */
function paging(url: URL): Page | string | undefined {
  const p = url.searchParams;
  if (!p.has('limit') && !p.has('offset') && !p.has('q')) return undefined;
  const limit = p.get('limit') ?? String(STATUS_NAMES);
  const offset = p.get('offset') ?? '0';
  if (!/^[1-9]\d*$/.test(limit) || Number(limit) > MAX_PAGE) return `limit must be a whole number from 1 to ${MAX_PAGE}, got "${limit.slice(0, 20)}"`;
  if (!/^\d+$/.test(offset)) return `offset must be a whole number, got "${offset.slice(0, 20)}"`;
  return { offset: Number(offset), limit: Number(limit), q: (p.get('q') ?? '').slice(0, 200).toLowerCase() };
}

const OUT_OF_SYNC_FIRST: Record<SyncState, number> = { nacked: 0, stale: 1, pending: 2, 'not-sent': 3, synced: 4 };

/**
 * One page of streams for the status page: out-of-sync ones first (the worst state of any type), then by node
 * id; each type with its sync state and no names. `total` counts every stream, `outOfSync` those not synced.
 */
function nodesPage(o: AdminOptions, page: Page, outOfSyncOnly: boolean) {
  // Only the page's rows are built in full: at 10,000 streams the rest is a rank and a name each.
  const all = o.xds.nodes({ maxNames: 0 });
  const rank = new Array<number>(all.length);
  let outOfSync = 0;
  const matched: number[] = [];
  for (let i = 0; i < all.length; i++) {
    const n = all[i]!;
    let worst = OUT_OF_SYNC_FIRST.synced;
    for (const t in n.types) worst = Math.min(worst, OUT_OF_SYNC_FIRST[syncState(n.types[t]!)]);
    rank[i] = worst;
    if (worst < OUT_OF_SYNC_FIRST.synced) outOfSync++;
    else if (outOfSyncOnly) continue;
    if (page.q !== '' && !n.nodeId.toLowerCase().includes(page.q) && !n.cluster.toLowerCase().includes(page.q)) continue;
    matched.push(i);
  }
  // nodes() is sorted by node id then stream already: a stable sort by rank keeps that order within a rank.
  matched.sort((a, b) => rank[a]! - rank[b]! || a - b);
  const nodes = matched.slice(page.offset, page.offset + page.limit).map((i) => {
    const n = all[i]!;
    return { ...n, types: Object.fromEntries(Object.entries(n.types).map(([t, ts]) => [t, { ...ts, subscribed: undefined, sync: syncState(ts) }])) };
  });
  return { total: all.length, outOfSync, matched: matched.length, offset: page.offset, nodes };
}

/** Endpoint counts by state and zone per served service, with the fleet's in-flight requests; paged. */
function servicesPage(o: AdminOptions, page: Page) {
  const fleet = o.fleet().services;
  const all = (o.model?.()?.services ?? []).filter((s) => page.q === '' || s.name.toLowerCase().includes(page.q));
  const services: ServiceSummary[] = all.slice(page.offset, page.offset + page.limit).map((s) => {
    const endpoints: EndpointCounts = { healthy: 0, draining: 0, notReady: 0 };
    const zones: Record<string, EndpointCounts> = {};
    for (const e of s.endpoints) {
      const state = healthOf(e);
      const key = state === 'HEALTHY' ? 'healthy' : state === 'DRAINING' ? 'draining' : 'notReady';
      endpoints[key]++;
      (zones[e.zone] ??= { healthy: 0, draining: 0, notReady: 0 })[key]++;
    }
    const stats = fleet[s.name];
    return { name: s.name, ports: s.ports.map((p) => p.name), endpoints, zones, activeRequests: stats?.activeRequests ?? null, envoys: stats?.envoys ?? 0 };
  });
  return { total: o.model?.()?.services.length ?? 0, matched: all.length, offset: page.offset, services };
}
