import http from 'node:http';
import { listen, type ListeningServer } from './http.js';
import type { SnapshotCache } from '../xds/cache.js';
import { TYPE_SHORT } from '../xds/resources.js';
import type { XdsServer } from '../xds/server.js';
import type { Metrics } from './metrics.js';

/** What the admin server reads; all of it is read at request time. */
export interface AdminOptions {
  readonly xds: XdsServer;
  readonly cache: SnapshotCache;
  readonly metrics: Metrics;
  /** Readiness: true once the first complete snapshot is set. */
  readonly ready: () => boolean;
  /** While not ready: why, when more is known than "no snapshot yet" (e.g. the endpoints file is invalid). */
  readonly notReadyReason?: () => string | undefined;
  /** Fleet active requests per served service, from Envoys' stats reports. */
  readonly fleet: () => FleetStatus;
  /** The scaler's status and recent decisions, when the scaler runs here. */
  readonly scaler?: (filter: { service?: string; limit?: number }) => unknown;
}

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
 * Serves, over plain HTTP: `/healthz` (the process is up), `/readyz` (200 only once the first complete
 * snapshot is set, 503 before), `/status/nodes` (every connected stream: node id, cluster, stream kind,
 * per-type subscribed names (their count, and up to {@link STATUS_NAMES} of them; all with `?node=ID`, which
 * lists only that node's streams), sent and ACKed versions, pending nonce, last NACK, connected since),
 * `/status/snapshots` (per group: versions, and per type the resource count and up to {@link STATUS_NAMES}
 * resources with their versions; all of one type with `?type=cds|eds|lds|rds`), `/status/fleet` (in-flight requests per service
 * summed over the Envoys reporting stats), `/status/scaler` (role, policy in force or rejected, per-service
 * replicas and the last decisions with their inputs, newest first; `?service=ns/name&limit=N`) and `/metrics`
 * (Prometheus text).
 */
export async function startAdminServer(host: string, port: number, o: AdminOptions): Promise<AdminServer> {
  const json = (res: http.ServerResponse, code: number, body: unknown) => {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body, null, 2) + '\n');
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: `method ${req.method} not allowed; use GET` });
    switch (url.pathname) {
      case '/healthz':
        return json(res, 200, { status: 'ok' });
      case '/readyz':
        return o.ready() ? json(res, 200, { status: 'ready' }) : json(res, 503, { status: 'not ready', reason: o.notReadyReason?.() ?? 'no complete snapshot yet' });
      case '/status/nodes': {
        // One node in full; the fleet with a sample of each stream's names, so the answer stays small.
        const node = url.searchParams.get('node');
        return json(res, 200, { nodes: node === null ? o.xds.nodes({ maxNames: STATUS_NAMES }) : o.xds.nodes({ nodeId: node }) });
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
      case '/status/fleet':
        return json(res, 200, o.fleet());
      case '/status/scaler': {
        if (!o.scaler) return json(res, 404, { error: 'the scaler is not running in this process (serve --scaler)' });
        const limit = url.searchParams.get('limit');
        if (limit !== null && !/^[1-9]\d*$/.test(limit)) return json(res, 400, { error: `limit must be a positive whole number, got "${limit}"` });
        const service = url.searchParams.get('service');
        return json(res, 200, o.scaler({ ...(service !== null && { service }), ...(limit !== null && { limit: Number(limit) }) }));
      }
      case '/metrics':
        return void o.metrics.render().then((text) => {
          res.writeHead(200, { 'content-type': o.metrics.contentType });
          res.end(text);
        }, (e: unknown) => json(res, 500, { error: `rendering metrics: ${e instanceof Error ? e.message : String(e)}` }));
      default:
        return json(res, 404, { error: `no such path ${url.pathname}`, paths: ['/healthz', '/readyz', '/status/nodes', '/status/snapshots', '/status/fleet', '/status/scaler', '/metrics'] });
    }
  });
  return listen(server, host, port);
}
