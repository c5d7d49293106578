import { status as GrpcStatus } from '@grpc/grpc-js';
import { createGrpcServer, type GrpcMethod, type GrpcService, type ServerTls } from '../grpc/server.js';
import type { Logger } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import type { SnapshotCache } from './cache.js';
import { DeltaStream } from './delta.js';
import type { IdentityRule } from './identity.js';
import { TYPE_SHORT, TypeUrl } from './resources.js';
import { SotwStream } from './sotw.js';
import { warmDecoders } from './request.js';
import { DEFAULT_LIMITS, flushMetrics, nacksCounter, type StreamDeps, type StreamKind, type StreamLimits, type SyncState, type TypeStatus, type XdsStream } from './stream.js';


/** Splits `host:port` (`[v6]:port` for IPv6); throws, saying what is wrong, on anything else. */
export function parseListenAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65_535) throw new Error(`"${address}" is not HOST:PORT (e.g. 0.0.0.0:18000, [::]:18000)`);
  return { host: m[1] ?? m[2]!, port };
}

/** Options of {@link createXdsServer}. */
export interface XdsServerOptions {
  readonly cache: SnapshotCache;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly limits?: Partial<StreamLimits>;
  /** Largest xDS request accepted, in bytes (larger ones end the stream with RESOURCE_EXHAUSTED). Default 1 MiB. */
  readonly maxMessageBytes?: number;
  /** Sent as `control_plane.identifier`. */
  readonly controlPlane?: string;
  /** More gRPC services to serve on the same port (e.g. Envoy's MetricsService). */
  readonly services?: readonly GrpcService[];
  /**
   * A connection that has not completed the HTTP/2 handshake (the client's preface and SETTINGS) within this
   * long is closed, so silent or half-open connections cannot pile up file descriptors. Default 10 s.
   */
  readonly handshakeTimeoutMs?: number;
  /** A connection silent this long is sent a PING, and closed if it goes unanswered for `keepaliveTimeoutMs` (defaults 30 s, 10 s). */
  readonly keepaliveTimeMs?: number;
  readonly keepaliveTimeoutMs?: number;
  /** Transport security for every service on the port (see tls.ts); plaintext when absent. */
  readonly tls?: ServerTls;
  /** Nodes must prove their id with their client certificate (needs mTLS). */
  readonly identity?: IdentityRule;
}

/** One connected stream as the status API reports it. */
export interface NodeStatus {
  readonly stream: number;
  readonly nodeId: string;
  readonly cluster: string;
  readonly userAgent: string;
  /** From node metadata `inferplane.io/stats-url`, when the node offers its stats for scraping. */
  readonly statsUrl?: string;
  readonly group: string;
  /** `ads`, or the per-type service (`cds`, `eds`, `lds`, `rds`). */
  readonly service: string;
  readonly variant: 'sotw' | 'delta';
  readonly connectedSince: string;
  readonly types: Record<string, TypeStatus>;
}

/** The running xDS server. */
export interface XdsServer {
  /** Binds and starts serving; resolves to the bound port (useful with port 0). */
  listen(address: string): Promise<number>;
  /**
   * Every connected stream's status (only node `nodeId`'s when given), sorted by node id then stream; each type
   * lists at most `maxNames` of its subscribed names (default all) and always their count.
   */
  nodes(o?: { nodeId?: string; maxNames?: number }): NodeStatus[];
  /**
   * The nodes offering their stats for scraping (node metadata `inferplane.io/stats-url`), one entry per node
   * however many streams it holds. Kept as streams come and go, so reading it every scrape round costs only
   * the nodes that offer a URL: building {@link nodes} for 10,000 streams each second took a fifth of the
   * server's time while a change was being delivered.
   */
  statsTargets(): { nodeId: string; url: string }[];
  /** How many streams stand in each {@link SyncState} per type (short type name); counts of 0 are left out. */
  syncCounts(): { type: string; state: SyncState; streams: number }[];
  /** Number of open streams. */
  streamCount(): number;
  /**
   * Stops accepting streams, closes open ones with UNAVAILABLE (xDS and the added services' alike, so clients
   * reconnect to another replica at once), and waits up to `graceMs` for them to finish before forcing the
   * transport down.
   */
  shutdown(graceMs?: number): Promise<void>;
}

interface Method {
  readonly service: string;
  readonly method: string;
  readonly kind: StreamKind;
  readonly variant: 'sotw' | 'delta';
}

const SERVICES: readonly Method[] = [
  ['envoy.service.discovery.v3.AggregatedDiscoveryService', 'StreamAggregatedResources', 'DeltaAggregatedResources', 'ads'],
  ['envoy.service.cluster.v3.ClusterDiscoveryService', 'StreamClusters', 'DeltaClusters', TypeUrl.Cluster],
  ['envoy.service.endpoint.v3.EndpointDiscoveryService', 'StreamEndpoints', 'DeltaEndpoints', TypeUrl.Endpoint],
  ['envoy.service.listener.v3.ListenerDiscoveryService', 'StreamListeners', 'DeltaListeners', TypeUrl.Listener],
  ['envoy.service.route.v3.RouteDiscoveryService', 'StreamRoutes', 'DeltaRoutes', TypeUrl.Route],
].flatMap(([service, sotw, delta, kind]) => [
  { service: service!, method: sotw!, kind: kind as StreamKind, variant: 'sotw' as const },
  { service: service!, method: delta!, kind: kind as StreamKind, variant: 'delta' as const },
]);

/**
 * Creates the xDS management server: ADS and the per-type CDS/EDS/LDS/RDS services, each with SotW and Delta
 * streams, all answered from one {@link SnapshotCache}, on our own gRPC transport (see grpc/http2.ts).
 * Responses are pre-encoded buffers (see wire.ts), written without copies; requests are decoded by each stream.
 * Unary Fetch* methods are not served (UNIMPLEMENTED).
 */
export function createXdsServer(options: XdsServerOptions): XdsServer {
  const { log, metrics } = options;
  const maxXds = options.maxMessageBytes ?? 1024 * 1024;
  const streams = new Set<XdsStream>();
  const calls = new Set<XdsStream>();
  const offering = new Set<XdsStream>();
  // Shown at 0 from the start: an alert on NACKs has a series before the first one.
  nacksCounter(metrics);
  flushMetrics(metrics);
  warmDecoders();
  const opened = metrics.counter('inferplane_xds_streams_opened_total', 'xDS streams opened, by service and variant', ['service', 'variant'], ['ads', ...Object.values(TYPE_SHORT)].flatMap((service) => ['sotw', 'delta'].map((variant) => ({ service, variant }))));
  metrics.gauge('inferplane_xds_streams', 'Open xDS streams that have identified their node', [], () => streams.size);

  const deps: StreamDeps = {
    cache: options.cache,
    log,
    metrics,
    limits: { ...DEFAULT_LIMITS, ...options.limits },
    controlPlane: options.controlPlane ?? 'inferplane',
    ...(options.identity && { identity: options.identity }),
    onOpen: (s) => {
      streams.add(s);
      if (s.node!.statsUrl) offering.add(s);
      opened.inc({ service: s.kind === 'ads' ? 'ads' : TYPE_SHORT[s.kind], variant: s.variant });
      log.info('xDS stream opened', { stream: s.id, node: s.node?.id, cluster: s.node?.cluster, group: s.group, variant: s.variant, service: s.kind === 'ads' ? 'ads' : TYPE_SHORT[s.kind] });
    },
    onClose: (s) => {
      streams.delete(s);
      offering.delete(s);
      calls.delete(s);
      log.info('xDS stream closed', { stream: s.id, node: s.node?.id });
    },
  };

  const xdsMethods = SERVICES.map(
    (m): GrpcMethod => ({
      path: `/${m.service}/${m.method}`,
      maxMessageBytes: maxXds,
      start(call) {
        const transport = {
          write: (frame: Buffer) => call.write(frame),
          close: (code: GrpcStatus, details: string) => call.end(code, details),
          peerCertificate: call.peerCertificate,
          owner: call.conn,
        };
        const stream = m.variant === 'sotw' ? new SotwStream(m.kind, deps, transport) : new DeltaStream(m.kind, deps, transport);
        calls.add(stream);
        return {
          // Decoded by the stream when it handles the request (see XdsStream.receive), not as it arrives.
          message: (req) => stream.receive(req),
          oversized: (bytes) => stream.receive({ malformed: `a ${bytes}-byte request is larger than the ${maxXds}-byte limit (--max-message-bytes)`, code: GrpcStatus.RESOURCE_EXHAUSTED }),
          // The client half-closed: finish our side too.
          halfClosed: () => {
            stream.ended();
            call.end(GrpcStatus.OK);
          },
          cancelled: () => stream.ended(),
          drain: () => stream.drained(),
        };
      },
    }),
  );
  const server = createGrpcServer({
    methods: [...xdsMethods, ...(options.services ?? []).flatMap((s) => s.methods)],
    log,
    metrics,
    ...(options.tls && { tls: options.tls }),
    ...(options.handshakeTimeoutMs !== undefined && { handshakeTimeoutMs: options.handshakeTimeoutMs }),
    ...(options.keepaliveTimeMs !== undefined && { keepaliveTimeMs: options.keepaliveTimeMs }),
    ...(options.keepaliveTimeoutMs !== undefined && { keepaliveTimeoutMs: options.keepaliveTimeoutMs }),
  });

  return {
    async listen(address) {
      const { host, port } = parseListenAddress(address);
      return server.listen(host, port);
    },
    nodes: ({ nodeId, maxNames } = {}) =>
      [...streams]
        .filter((s) => nodeId === undefined || s.node!.id === nodeId)
        .map((s): NodeStatus => ({
          stream: s.id,
          nodeId: s.node!.id,
          cluster: s.node!.cluster,
          userAgent: s.node!.userAgent,
          ...(s.node!.statsUrl && { statsUrl: s.node!.statsUrl }),
          group: s.group!,
          service: s.kind === 'ads' ? 'ads' : TYPE_SHORT[s.kind],
          variant: s.variant,
          connectedSince: s.connectedSince.toISOString(),
          types: s.typeStatus(maxNames),
        }))
        .sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : a.stream - b.stream)),
    statsTargets: () => {
      const byNode = new Map<string, string>();
      for (const s of offering) if (!byNode.has(s.node!.id)) byNode.set(s.node!.id, s.node!.statsUrl!);
      return [...byNode].map(([nodeId, url]) => ({ nodeId, url }));
    },
    syncCounts: () => {
      const counts = new Map<string, number>();
      for (const s of streams) {
        for (const [type, state] of s.syncStates()) {
          const k = `${type} ${state}`;
          counts.set(k, (counts.get(k) ?? 0) + 1);
        }
      }
      return [...counts].map(([k, streams]) => {
        const [type, state] = k.split(' ') as [string, SyncState];
        return { type, state, streams };
      });
    },
    streamCount: () => calls.size,
    async shutdown(graceMs = 5_000) {
      // GOAWAY first, so that no new call slips in; then every open one ends with UNAVAILABLE.
      const done = server.shutdown(graceMs);
      for (const s of [...calls]) s.fail(GrpcStatus.UNAVAILABLE, 'inferplane is shutting down; reconnect');
      for (const s of options.services ?? []) s.close?.();
      await done;
    },
  };
}
