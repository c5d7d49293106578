import net from 'node:net';
import tls from 'node:tls';
import { status as Status } from '@grpc/grpc-js';
import type { Logger } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import type { HeaderField } from './hpack.js';
import { Call, Connection, H2_LIMITS, type CallHandler, type ConnectionProblem } from './http2.js';

/** Listen backlog asked for: as many pending connections as the kernel allows (net.core.somaxconn caps it). */
export const LISTEN_BACKLOG = 65_535;

/** One method a {@link GrpcServer} serves. */
export interface GrpcMethod {
  /** `/package.Service/Method`. */
  readonly path: string;
  /** Larger request messages are not read; the handler hears of them through `oversized`. */
  readonly maxMessageBytes: number;
  /** Called for each new call, before any of its messages; returns what hears them. */
  start(call: Call): CallHandler;
}

/** Methods that belong together, served on a port another server owns (e.g. Envoy's MetricsService on the xDS port). */
export interface GrpcService {
  readonly methods: readonly GrpcMethod[];
  /** Ends every open call with UNAVAILABLE (the server is shutting down), so clients move elsewhere at once. */
  readonly close?: () => void;
}

/** TLS for a {@link GrpcServer}, from certificate files that may change while it runs. */
export interface ServerTls {
  /** The key, certificate and client CA of the moment. */
  current(): { readonly key: Buffer; readonly cert: Buffer; readonly ca?: Buffer | undefined };
  /** Whether clients must present a certificate that chains to `ca` (mTLS). */
  readonly requireClientCert: boolean;
  /** Registers a call made whenever `current()` changes; returns its removal. */
  onChange(listener: () => void): () => void;
}

/** Options of {@link createGrpcServer}. */
export interface GrpcServerOptions {
  readonly methods: readonly GrpcMethod[];
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Plaintext when absent. */
  readonly tls?: ServerTls;
  /**
   * A connection that has not completed the HTTP/2 handshake (the client's preface and SETTINGS; with TLS, the TLS
   * handshake before it) within this long is closed, so silent or half-open connections cannot pile up file
   * descriptors. Default 10 s.
   */
  readonly handshakeTimeoutMs?: number;
  /** A connection silent this long is sent a PING (default 30 s)… */
  readonly keepaliveTimeMs?: number;
  /** …and closed if the PING is not answered within this long (default 10 s): its peer is gone. */
  readonly keepaliveTimeoutMs?: number;
  /** Calls open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS); more are refused. Default 1,000. */
  readonly maxConcurrentStreams?: number;
  /** Largest request header list, in HPACK's counting. Default 16 KiB. */
  readonly maxHeaderListBytes?: number;
  /** Monotonic milliseconds (tests pass their own). */
  readonly now?: () => number;
}

/** A running gRPC server. */
export interface GrpcServer {
  /** Binds `host:port` and serves on it; resolves to the bound port. May be called for several addresses. */
  listen(host: string, port: number): Promise<number>;
  /** Open connections. */
  connectionCount(): number;
  /**
   * Stops listening and sends every connection a GOAWAY: open calls go on (their owners should end them), new
   * ones are refused, and each connection closes once its calls have ended. After `graceMs` the rest are closed.
   */
  shutdown(graceMs: number): Promise<void>;
}

/** Reasons {@link GrpcServer} closes connections on its own, as counted in `inferplane_connections_closed_total`. */
const CLOSE_REASONS = ['handshake-timeout', 'keepalive-timeout', 'protocol-error', 'internal-error'] as const;

/**
 * A gRPC server on our own HTTP/2 (see http2.ts), for the methods given: unknown paths are answered
 * UNIMPLEMENTED, requests that are not gRPC with HTTP 415. Messages may arrive compressed (gzip, deflate);
 * responses are not compressed. `grpc-timeout` is not enforced: the methods served are long-lived streams.
 */
export function createGrpcServer(o: GrpcServerOptions): GrpcServer {
  const methods = new Map(o.methods.map((m) => [m.path, m]));
  for (const m of o.methods) {
    if (m.maxMessageBytes > H2_LIMITS.bufferedRequestBytes) throw new Error(`${m.path}: a ${m.maxMessageBytes}-byte message limit exceeds the ${H2_LIMITS.bufferedRequestBytes} bytes a connection may hold`);
  }
  const now = o.now ?? (() => performance.now());
  const handshakeTimeoutMs = o.handshakeTimeoutMs ?? 10_000;
  const keepaliveTimeMs = o.keepaliveTimeMs ?? 30_000;
  const keepaliveTimeoutMs = o.keepaliveTimeoutMs ?? 10_000;
  const closedBy = o.metrics.counter('inferplane_connections_closed_total', 'Connections closed by inferplane, by reason', ['reason'], CLOSE_REASONS.map((reason) => ({ reason })));
  const connections = new Set<Connection>();
  const servers: net.Server[] = [];
  let shuttingDown = false;
  let allClosed: (() => void) | undefined;

  const host = {
    maxConcurrentStreams: o.maxConcurrentStreams ?? 1_000,
    maxHeaderListBytes: o.maxHeaderListBytes ?? 16 * 1024,
    open(call: Call, headers: readonly HeaderField[]) {
      const header = (name: string) => headers.find(([n]) => n === name)?.[1];
      const type = header('content-type') ?? '';
      if (type !== 'application/grpc' && !type.startsWith('application/grpc+') && !type.startsWith('application/grpc;')) return call.rejectHttp(415);
      if (shuttingDown) return call.end(Status.UNAVAILABLE, 'inferplane is shutting down; reconnect');
      const method = methods.get(call.path);
      if (!method) return call.end(Status.UNIMPLEMENTED, `${call.path} is not a method this server implements`);
      const encoding = header('grpc-encoding');
      if (encoding === 'gzip' || encoding === 'deflate') call.encoding = encoding;
      else if (encoding !== undefined && encoding !== 'identity') return call.end(Status.UNIMPLEMENTED, `grpc-encoding "${encoding}" is not supported (identity, deflate, gzip are)`);
      call.maxMessageBytes = method.maxMessageBytes;
      call.handler = method.start(call);
    },
    settled(conn: Connection) {
      handshakes.get(conn)?.();
    },
    closed(conn: Connection, problem?: ConnectionProblem) {
      handshakes.get(conn)?.();
      connections.delete(conn);
      if (problem) {
        closedBy.inc({ reason: problem.reason });
        if (problem.reason === 'protocol-error') o.log.warn('closed a connection that broke the HTTP/2 or gRPC protocol', { peer: conn.peer, problem: problem.message });
        else o.log.error('closed a connection whose frames inferplane failed to handle (a bug: please report it)', { peer: conn.peer, error: problem.message });
      }
      if (connections.size === 0) allClosed?.();
    },
  };
  /** Per connection still in its handshake: clears its timer. */
  const handshakes = new Map<Connection, () => void>();

  const accept = (socket: net.Socket | tls.TLSSocket, handshakeLeftMs: number) => {
    if (shuttingDown) return socket.destroy();
    // Frames are coalesced per tick already (corked); Nagle would only hold back the parts of an answer written
    // in later turns, behind the client's delayed ACK.
    socket.setNoDelay(true);
    const conn = new Connection(socket, host, now);
    connections.add(conn);
    const timer = setTimeout(() => {
      handshakes.delete(conn);
      closedBy.inc({ reason: 'handshake-timeout' });
      o.log.debug('closing a connection that did not complete the HTTP/2 handshake', { peer: conn.peer, timeoutMs: handshakeTimeoutMs });
      conn.destroy();
    }, Math.max(0, handshakeLeftMs)).unref();
    handshakes.set(conn, () => {
      clearTimeout(timer);
      handshakes.delete(conn);
    });
  };

  // One sweep for every connection's keepalive, not a timer each.
  const sweep = setInterval(() => {
    const t = now();
    for (const conn of connections) {
      if (conn.pingSentAt !== undefined) {
        if (t - conn.pingSentAt < keepaliveTimeoutMs) continue;
        closedBy.inc({ reason: 'keepalive-timeout' });
        o.log.info('closing a connection whose peer stopped answering PINGs', { peer: conn.peer, timeoutMs: keepaliveTimeoutMs });
        conn.destroy();
      } else if (t - conn.lastReceived >= keepaliveTimeMs) {
        conn.ping();
      }
    }
  }, Math.max(10, Math.min(1_000, keepaliveTimeMs / 4, keepaliveTimeoutMs / 4))).unref();

  return {
    async listen(hostname, port) {
      let server: net.Server;
      if (o.tls) {
        const t = o.tls;
        const s = tls.createServer({
          ...t.current(),
          requestCert: t.requireClientCert,
          rejectUnauthorized: t.requireClientCert,
          ALPNProtocols: ['h2'],
          handshakeTimeout: handshakeTimeoutMs,
        });
        s.on('secureConnection', (socket: tls.TLSSocket) => {
          if (socket.alpnProtocol !== 'h2' && socket.alpnProtocol !== false) return socket.destroy();
          // TLS's own handshake had its own timeout (handshakeTimeout); HTTP/2's starts now.
          accept(socket, handshakeTimeoutMs);
        });
        s.on('tlsClientError', (e, socket) => {
          o.log.debug('TLS handshake failed', { peer: `${socket.remoteAddress}:${socket.remotePort}`, error: e.message });
          if ((e as { code?: string }).code === 'ERR_TLS_HANDSHAKE_TIMEOUT') closedBy.inc({ reason: 'handshake-timeout' });
        });
        const off = t.onChange(() => s.setSecureContext(t.current()));
        s.on('close', off);
        server = s;
      } else {
        server = net.createServer((socket) => accept(socket, handshakeTimeoutMs));
      }
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: hostname, port, backlog: LISTEN_BACKLOG }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      server.on('error', (e) => o.log.error('gRPC listener failed', { address: `${hostname}:${port}`, error: e.message }));
      servers.push(server);
      return (server.address() as net.AddressInfo).port;
    },
    connectionCount: () => connections.size,
    shutdown: (graceMs) =>
      new Promise<void>((resolve) => {
        shuttingDown = true;
        clearInterval(sweep);
        for (const s of servers) s.close();
        const timer = setTimeout(() => {
          for (const conn of [...connections]) conn.destroy();
          resolve();
        }, graceMs);
        allClosed = () => {
          clearTimeout(timer);
          resolve();
        };
        for (const conn of [...connections]) conn.goAway();
        if (connections.size === 0) allClosed();
      }),
  };
}
