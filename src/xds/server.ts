import type { Http2Server } from 'node:http2';
import net, { type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../observability/log.js';
import type { GrpcService } from '../scaler/metrics-service.js';
import type { Metrics } from '../observability/metrics.js';
import type { SnapshotCache } from './cache.js';
import { DeltaStream } from './delta.js';
import type { IdentityRule } from './identity.js';
import { TYPE_SHORT, TypeUrl } from './resources.js';
import { SotwStream } from './sotw.js';
import { DEFAULT_LIMITS, nacksCounter, pushLatency, responsesCounter, type MalformedRequest, type TypeStatus, type StreamDeps, type StreamKind, type StreamLimits, type XdsStream } from './stream.js';

/** Listen backlog asked for: as many pending connections as the kernel allows (net.core.somaxconn caps it). */
export const LISTEN_BACKLOG = 65_535;

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
  /** Transport security for every service on the port (see tls.ts); plaintext when absent. */
  readonly credentials?: grpc.ServerCredentials;
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
 * streams, all answered from one {@link SnapshotCache}. Responses are pre-encoded buffers (see wire.ts);
 * requests are decoded with Envoy's own protos. Unary Fetch* methods are not served (UNIMPLEMENTED).
 */
export function createXdsServer(options: XdsServerOptions): XdsServer {
  const { log, metrics } = options;
  const maxXds = options.maxMessageBytes ?? 1024 * 1024;
  // Each service checks its own limit, so that a refusal is logged and counted (gRPC's own check only ends the
  // call, which the handler cannot tell from a client going away). gRPC's limit stays as a bound on memory, well
  // above every service's.
  const largest = Math.max(maxXds, ...(options.services ?? []).map((s) => s.maxMessageBytes ?? 0));
  const server = new grpc.Server({
    'grpc.max_receive_message_length': largest * 4,
    // Find dead peers (an Envoy whose host vanished) so their streams do not linger.
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
  });
  const streams = new Set<XdsStream>();
  const calls = new Map<XdsStream, grpc.ServerDuplexStream<unknown, Buffer>>();
  let shuttingDown = false;
  // Shown at 0 from the start: an alert on NACKs has a series before the first one.
  nacksCounter(metrics);
  responsesCounter(metrics);
  pushLatency(metrics);
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
      opened.inc({ service: s.kind === 'ads' ? 'ads' : TYPE_SHORT[s.kind], variant: s.variant });
      log.info('xDS stream opened', { stream: s.id, node: s.node?.id, cluster: s.node?.cluster, group: s.group, variant: s.variant, service: s.kind === 'ads' ? 'ads' : TYPE_SHORT[s.kind] });
    },
    onClose: (s) => {
      streams.delete(s);
      calls.delete(s);
      log.info('xDS stream closed', { stream: s.id, node: s.node?.id });
    },
  };

  const sized = (b: Buffer): Buffer | MalformedRequest =>
    b.length > maxXds ? { malformed: `a ${b.length}-byte request is larger than the ${maxXds}-byte limit (--max-message-bytes)`, code: grpc.status.RESOURCE_EXHAUSTED } : b;
  const byService = new Map<string, { definition: Record<string, grpc.MethodDefinition<unknown, Buffer>>; handlers: grpc.UntypedServiceImplementation }>();
  for (const m of SERVICES) {
    let entry = byService.get(m.service);
    if (!entry) byService.set(m.service, (entry = { definition: {}, handlers: {} }));
    entry.definition[m.method] = {
      path: `/${m.service}/${m.method}`,
      requestStream: true,
      responseStream: true,
      originalName: m.method,
      // Decoded by the stream when it handles the request (see XdsStream.receive), not as it arrives.
      requestDeserialize: (b: Buffer) => b,
      requestSerialize: () => Buffer.alloc(0),
      responseSerialize: (frame: Buffer) => frame,
      responseDeserialize: (b: Buffer) => b,
    };
    entry.handlers[m.method] = ((call: grpc.ServerDuplexStream<any, Buffer>) => {
      if (shuttingDown) {
        call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'inferplane is shutting down' });
        return;
      }
      const transport = {
        write: (frame: Buffer) => call.write(frame),
        close: (code: grpc.status, details: string) => call.emit('error', { code, details }),
        peerCertificate: call.getAuthContext().sslPeerCertificate,
      };
      const stream = m.variant === 'sotw' ? new SotwStream(m.kind, deps, transport) : new DeltaStream(m.kind, deps, transport);
      calls.set(stream, call);
      call.on('data', (req: Buffer) => stream.receive(sized(req)));
      call.on('drain', () => stream.drained());
      // The client half-closed: finish our side too.
      call.on('end', () => {
        stream.ended();
        call.end();
      });
      call.on('cancelled', () => stream.ended());
      call.on('error', () => stream.ended());
      call.on('close', () => stream.ended());
    }) as grpc.handleBidiStreamingCall<any, Buffer>;
  }
  for (const { definition, handlers } of byService.values()) server.addService(definition as grpc.ServiceDefinition, handlers);
  for (const { definition, handlers } of options.services ?? []) server.addService(definition, handlers);

  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? 10_000;
  const abandoned = metrics.counter('inferplane_connections_closed_total', 'Connections closed by inferplane, by reason', ['reason'], [{ reason: 'handshake-timeout' }]);
  const guarded = new WeakSet<object>();
  /**
   * grpc-js turns its HTTP/2 servers' timeouts off and closes idle sessions only gracefully, which never ends a
   * peer that stays silent: a connection whose peer has not sent its SETTINGS within the handshake time is
   * reset (at the socket: a session may not touch its socket). The servers are reached through grpc-js's
   * private field (its version is pinned; a test fails if this stops working).
   */
  const guardHandshakes = () => {
    const h2servers = (server as unknown as { http2Servers?: Map<Http2Server, unknown> }).http2Servers;
    if (!(h2servers instanceof Map)) throw new Error('@grpc/grpc-js no longer exposes its HTTP/2 servers: the handshake timeout cannot be set');
    for (const h2 of h2servers.keys()) {
      if (guarded.has(h2)) continue;
      guarded.add(h2);
      const settled = new Set<string>();
      const peer = (s: { remoteAddress?: string | undefined; remotePort?: number | undefined }) => `${s.remoteAddress}|${s.remotePort}`;
      h2.on('session', (session) => {
        const key = peer(session.socket);
        session.once('remoteSettings', () => settled.add(key));
        session.once('close', () => settled.delete(key));
      });
      h2.on('connection', (socket: Socket) => {
        const key = peer(socket);
        const timer = setTimeout(() => {
          if (settled.has(key)) return;
          abandoned.inc({ reason: 'handshake-timeout' });
          log.debug('closing a connection that did not complete the HTTP/2 handshake', { peer: key, timeoutMs: handshakeTimeoutMs });
          // destroy() alone leaves the descriptor with the HTTP/2 session that took the socket over.
          socket.resetAndDestroy();
        }, handshakeTimeoutMs).unref();
        socket.once('close', () => clearTimeout(timer));
      });
    }
  };

  const listeners: net.Server[] = [];
  return {
    async listen(address) {
      const { host, port } = parseListenAddress(address);
      // Our own listener, its connections handed to grpc-js: grpc-js listens with Node's default backlog (511),
      // and a fleet reconnecting at once (every Envoy after a restart) overflows it; the connections the kernel
      // then drops are streams lost. The kernel caps the backlog at net.core.somaxconn.
      const injector = server.createConnectionInjector(options.credentials ?? grpc.ServerCredentials.createInsecure());
      guardHandshakes();
      const listener = net.createServer((socket) => injector.injectConnection(socket));
      await new Promise<void>((resolve, reject) => {
        listener.once('error', reject);
        listener.listen({ host, port, backlog: LISTEN_BACKLOG }, () => {
          listener.off('error', reject);
          resolve();
        });
      });
      listener.on('error', (e) => log.error('xDS listener failed', { address, error: e.message }));
      listeners.push(listener);
      return (listener.address() as net.AddressInfo).port;
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
    streamCount: () => calls.size,
    shutdown: (graceMs = 5_000) =>
      new Promise<void>((resolve) => {
        shuttingDown = true;
        for (const l of listeners) l.close();
        let done = false;
        const finish = () => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          server.forceShutdown();
          finish();
        }, graceMs);
        server.tryShutdown(finish);
        for (const s of [...calls.keys()]) s.fail(grpc.status.UNAVAILABLE, 'inferplane is shutting down; reconnect');
        for (const s of options.services ?? []) s.close?.();
      }),
  };
}
