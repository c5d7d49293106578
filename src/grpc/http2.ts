import type { Socket } from 'node:net';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { gunzipSync, inflateSync } from 'node:zlib';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { encodeHeaders, HpackDecoder, HpackError, type HeaderField } from './hpack.js';
import { checkRequestHeaders, checkTrailers } from './request-headers.js';

/**
 * The server side of HTTP/2 (RFC 9113) for gRPC, on a socket of its own: frames, HPACK, flow control both ways,
 * PING, GOAWAY and RST_STREAM, and gRPC's message framing and trailers on top. It is what a gRPC server needs and
 * no more: no push, no priorities (accepted and ignored), no HTTP/1.1. Why not `node:http2`: nghttp2 holds about
 * 23 KiB per connection (a 16 KiB frame buffer among it) and Node's session objects several more; an xDS server
 * keeps one connection per Envoy open for days, mostly idle, and this keeps each to a few hundred bytes of state
 * above the socket. Outgoing messages are written as slices of the caller's buffer, never copied, so one
 * response shared by thousands of streams stays one buffer.
 *
 * Held to nghttp2's standard: h2spec passes on it (test/grpc/h2spec.test.ts), a frame-level fuzzer compares it
 * with `node:http2` (test/grpc/differential.test.ts), and every per-connection resource has a counted limit
 * ({@link H2_LIMITS}), each with a test.
 */

/** HTTP/2 error codes (RFC 9113 §7). */
export const H2Error = {
  NO_ERROR: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
  FLOW_CONTROL_ERROR: 3,
  STREAM_CLOSED: 5,
  FRAME_SIZE_ERROR: 6,
  REFUSED_STREAM: 7,
  CANCEL: 8,
  COMPRESSION_ERROR: 9,
  ENHANCE_YOUR_CALM: 11,
} as const;

/**
 * What one connection may make the server hold or do, beyond the streams (SETTINGS_MAX_CONCURRENT_STREAMS) and
 * the header list (SETTINGS_MAX_HEADER_LIST_SIZE) the host sets. A client past a limit gets a connection error
 * (GOAWAY with the code named), except where noted.
 */
export const H2_LIMITS = {
  /**
   * CONTINUATION frames after one HEADERS. A client splits a block only where it exceeds the frame size (16 KiB
   * at least), so a block within our header-list limit needs two or three; an empty CONTINUATION adds no bytes
   * to the block and would never trip a byte limit (CVE-2024-27316). nghttp2 allows 8; ENHANCE_YOUR_CALM.
   */
  continuationFrames: 32,
  /** Control frames (PING and SETTINGS acks, RST_STREAM) owed while the socket does not drain; ENHANCE_YOUR_CALM. */
  owedControlFrames: 10_000,
  /**
   * Request bytes held in messages not yet complete, over all of a connection's calls (each call is bounded by
   * its method's message limit): eight of the largest requests we take. ENHANCE_YOUR_CALM.
   */
  bufferedRequestBytes: 32 * 1024 * 1024,
  /**
   * Response messages one call may have queued behind flow control. A handler stops writing when `write` says
   * false, so it holds one or two; past this the handler ignores backpressure and the call ends RESOURCE_EXHAUSTED.
   */
  queuedMessagesPerCall: 1_024,
  /**
   * Resets of streams the server had not yet answered (CVE-2023-44487, "rapid reset"): a burst of this many,
   * refilled at {@link H2_LIMITS.resetRatePerSecond}. Cancelling a call that was answered costs nothing: that is
   * how clients end long streams. Past it, GOAWAY ENHANCE_YOUR_CALM with the last stream id: calls already
   * accepted go on for {@link H2_LIMITS.goAwayGraceMs}.
   */
  unansweredResetBurst: 1_000,
  resetRatePerSecond: 100,
  /** How long calls go on after a GOAWAY that cuts a client off before the connection is closed. */
  goAwayGraceMs: 10_000,
  /** Frames handled per connection per turn of the event loop: no connection can take every turn. */
  framesPerTurn: 128,
  /** Recently closed streams remembered, to tell frames on them (STREAM_CLOSED) from frames on ids never used. */
  closedStreams: 64,
} as const;

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const enum Frame {
  DATA = 0,
  HEADERS = 1,
  PRIORITY = 2,
  RST_STREAM = 3,
  SETTINGS = 4,
  PUSH_PROMISE = 5,
  PING = 6,
  GOAWAY = 7,
  WINDOW_UPDATE = 8,
  CONTINUATION = 9,
}
const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY_FLAG = 0x20;
const MAX_WINDOW = 2 ** 31 - 1;
/** Largest frame payload we accept: the protocol's default, which we do not raise. */
const MAX_FRAME_IN = 16_384;
/** Each stream's receive window, and the connection's: large enough that a client never waits on us to read. */
const STREAM_WINDOW = 1 << 20;
const CONNECTION_WINDOW = 1 << 24;
/** Longest `grpc-message` sent; longer details are cut (a header block must fit the peer's frame limits). */
const MAX_STATUS_MESSAGE = 4_096;
/** What a request that is not gRPC is told, as its response body. */
const NOT_GRPC_BODY = Buffer.from('inferplane serves gRPC on this port (xDS and Envoy\'s metrics service): POST with content-type application/grpc\n');

/** What a connection needs from its server. */
export interface ConnectionHost {
  readonly maxConcurrentStreams: number;
  readonly maxHeaderListBytes: number;
  /** A new call: its request headers are valid gRPC; the host routes it (and may end it at once). */
  open(call: Call, headers: readonly HeaderField[]): void;
  /** The client finished the HTTP/2 handshake (its preface and SETTINGS). */
  settled(conn: Connection): void;
  /**
   * The connection closed, for whatever reason; `problem` says what ended it, if it did not simply close: the
   * client broke the protocol or a limit, or handling its frames threw (a bug of ours, confined to its connection).
   */
  closed(conn: Connection, problem?: ConnectionProblem): void;
}

/** Why a connection was ended by the server. */
export interface ConnectionProblem {
  readonly reason: 'protocol-error' | 'internal-error';
  readonly message: string;
}

/** What a call's owner is told. Every method is optional to act on but must exist. */
export interface CallHandler {
  /** One whole request message, decompressed. */
  message(bytes: Buffer): void;
  /** A request message over the call's `maxMessageBytes`: it is dropped; the handler should end the call. */
  oversized(bytes: number): void;
  /** The client half-closed: no more messages will come. */
  halfClosed(): void;
  /** The client reset the call or the connection went away; the call is over and takes no writes. */
  cancelled(): void;
  /** A write that returned false has gone out: the call takes more. */
  drain(): void;
}

/** One unsent message: its gRPC prefix (empty for a plain HTTP body) and body, and how much of the two is sent. */
interface Outgoing {
  readonly prefix: Buffer;
  readonly body: Buffer;
  sent: number;
}

const NO_PREFIX = Buffer.alloc(0);

/** One gRPC call on one HTTP/2 stream, as its handler sees it. */
export class Call {
  /** Set by whoever routes the call, before any message arrives. */
  handler: CallHandler | undefined;
  /** Request messages larger than this are refused (see {@link CallHandler.oversized}). */
  maxMessageBytes = 4 * 1024 * 1024;
  /** The request's `grpc-encoding`, when it is one we decompress. */
  encoding: 'gzip' | 'deflate' | undefined;
  sendWindow: number;
  recvWindow = STREAM_WINDOW;
  /** The request's content-length, when it gave one: DATA must add up to it (RFC 9113 §8.1.1). */
  expectedLength: number | undefined;
  /** Request DATA bytes received, padding excluded. */
  receivedLength = 0;
  private recvUnacked = 0;
  private readonly queue: Outgoing[] = [];
  private headersSent = false;
  private trailers: Buffer | undefined;
  /** A plain HTTP answer ends with an empty DATA frame carrying END_STREAM instead of trailers. */
  private endWithData = false;
  /** A plain HTTP answer waiting for the request to end: its status, extra headers and body. */
  private plain: { readonly status: number; readonly headers: readonly HeaderField[] } | undefined;
  /** Our side has sent (or queued) its trailers. */
  localClosed = false;
  /** The client has half-closed. */
  remoteClosed = false;
  private gone = false;
  private wantsDrain = false;
  /** A request message in the making, when one spans DATA frames; its parts are copied as they come. */
  private partial: { readonly compressed: boolean; readonly size: number; readonly keep: boolean; readonly parts: Buffer[]; filled: number } | undefined;
  private prefix: Buffer | undefined;

  constructor(
    readonly conn: Connection,
    readonly id: number,
    readonly path: string,
  ) {
    this.sendWindow = conn.peerInitialWindow;
  }

  /** `address:port` of the client. */
  get peer(): string {
    return this.conn.peer;
  }

  /** The client's certificate (mTLS), if it presented one. */
  get peerCertificate(): PeerCertificate | undefined {
    return this.conn.peerCertificate;
  }

  /** Whether the call is over (trailers sent, or the client reset it or went away). */
  get ended(): boolean {
    return this.gone || this.localClosed;
  }

  /** Whether anything was sent back on the call (a client that resets it then is not racing us). */
  get answered(): boolean {
    return this.headersSent;
  }

  /**
   * Queues one response message; its bytes are sent as they are, not copied, so they must not change. Returns
   * false when the peer is not keeping up (flow control, or the socket's buffer is full): the handler's `drain`
   * follows once it has. A handler that keeps writing past that is cut off at
   * {@link H2_LIMITS.queuedMessagesPerCall} (RESOURCE_EXHAUSTED).
   */
  write(message: Buffer): boolean {
    if (this.ended) return false;
    if (this.queue.length >= H2_LIMITS.queuedMessagesPerCall) {
      this.end(GrpcStatus.RESOURCE_EXHAUSTED, `more than ${H2_LIMITS.queuedMessagesPerCall} responses are waiting for the client to read them`);
      this.handler?.cancelled();
      return false;
    }
    this.sendHeaders();
    const prefix = Buffer.allocUnsafe(5);
    prefix[0] = 0;
    prefix.writeUInt32BE(message.length, 1);
    this.queue.push({ prefix, body: message, sent: 0 });
    this.conn.pump(this);
    if (this.queue.length > 0 || this.conn.congested) {
      this.wantsDrain = true;
      return false;
    }
    return true;
  }

  /**
   * Ends the call with a gRPC status (trailers). With OK, queued messages go first; with an error, queued messages
   * not yet begun are dropped. Idempotent.
   */
  end(code: number, details = ''): void {
    if (this.ended) return;
    this.localClosed = true;
    // A message already begun must be finished, or the client could not read the trailers after it.
    if (code !== 0) this.queue.length = this.queue[0]?.sent ? 1 : 0;
    const fields: HeaderField[] = this.headersSent ? [] : [[':status', '200'], ['content-type', 'application/grpc']];
    fields.push(['grpc-status', String(code)]);
    if (details) fields.push(['grpc-message', percentEncode(details)]);
    this.trailers = encodeHeaders(fields);
    this.headersSent = true;
    this.conn.pump(this);
  }

  /**
   * Answers a request that is not gRPC with a plain HTTP status and a short text body saying what this port
   * serves (415 for a content type that is not gRPC's, 405 for a method that is not POST), once the client
   * has sent all of its request, as an HTTP server does: its DATA is read and dropped meanwhile.
   */
  rejectHttp(status: number, headers: readonly HeaderField[] = []): void {
    if (this.ended || this.headersSent) return;
    this.handler = undefined;
    this.plain = { status, headers };
    if (this.remoteClosed) this.answerPlain();
  }

  private answerPlain(): void {
    const plain = this.plain!;
    this.plain = undefined;
    this.localClosed = true;
    this.headersSent = true;
    const fields: HeaderField[] = [[':status', String(plain.status)], ['content-type', 'text/plain; charset=utf-8'], ['content-length', String(NOT_GRPC_BODY.length)], ...plain.headers];
    this.conn.sendFrame(Frame.HEADERS, END_HEADERS, this.id, encodeHeaders(fields));
    this.queue.push({ prefix: NO_PREFIX, body: NOT_GRPC_BODY, sent: 0 });
    this.endWithData = true;
    this.conn.pump(this);
  }

  private sendHeaders(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    this.conn.sendFrame(Frame.HEADERS, END_HEADERS, this.id, RESPONSE_HEADERS);
  }

  /** Sends what flow control allows; called by the connection when windows open. Returns whether the call is done sending. */
  flush(): boolean {
    const conn = this.conn;
    while (this.queue.length > 0) {
      const m = this.queue[0]!;
      const head = m.prefix.length;
      const total = head + m.body.length;
      const n = Math.min(total - m.sent, this.sendWindow, conn.sendWindow, conn.peerMaxFrame);
      if (n <= 0) return false;
      const header = frameHeader(n, Frame.DATA, 0, this.id);
      const pieces: Buffer[] = [header];
      let from = m.sent;
      const to = m.sent + n;
      if (from < head) {
        pieces.push(m.prefix.subarray(from, Math.min(head, to)));
        from = Math.min(head, to);
      }
      if (to > from) pieces.push(m.body.subarray(from - head, to - head));
      conn.sendPieces(pieces);
      m.sent = to;
      this.sendWindow -= n;
      conn.sendWindow -= n;
      if (m.sent === total) this.queue.shift();
    }
    if (this.endWithData) {
      this.endWithData = false;
      conn.sendFrame(Frame.DATA, END_STREAM, this.id);
      conn.forget(this);
    }
    if (this.trailers) {
      const t = this.trailers;
      this.trailers = undefined;
      // The trailers end our side; a client still sending is told to stop (NO_ERROR), and the stream is forgotten.
      conn.sendFrame(Frame.HEADERS, END_HEADERS | END_STREAM, this.id, t);
      if (!this.remoteClosed) conn.sendFrame(Frame.RST_STREAM, 0, this.id, u32(H2Error.NO_ERROR));
      conn.forget(this);
    }
    return true;
  }

  /** The socket drained or a window opened: tell a handler that was refused a write. */
  notifyDrain(): void {
    if (!this.wantsDrain || this.ended || this.queue.length > 0 || this.conn.congested) return;
    this.wantsDrain = false;
    this.handler?.drain();
  }

  /** The client half-closed its side. */
  remoteEnd(): void {
    this.remoteClosed = true;
    if (this.plain) return this.answerPlain();
    if (!this.ended) this.handler?.halfClosed();
  }

  /** DATA for this call: gRPC messages, possibly split across frames. A plain HTTP request's body is dropped. */
  receive(data: Buffer): void {
    if (!this.handler) return;
    let p = 0;
    while (p < data.length && !this.ended) {
      if (this.partial) {
        const part = this.partial;
        const n = Math.min(part.size - part.filled, data.length - p);
        if (part.keep) {
          part.parts.push(Buffer.from(data.subarray(p, p + n)));
          this.conn.holdRequestBytes(n);
        }
        part.filled += n;
        p += n;
        if (part.filled < part.size) break;
        this.partial = undefined;
        if (part.keep) {
          this.conn.holdRequestBytes(-part.size);
          this.deliver(part.compressed, part.parts.length === 1 ? part.parts[0]! : Buffer.concat(part.parts, part.size));
        }
        continue;
      }
      // The 5-byte prefix may itself be split.
      let prefix: Buffer;
      if (this.prefix || data.length - p < 5) {
        const have = this.prefix ?? Buffer.alloc(0);
        const need = 5 - have.length;
        const got = data.subarray(p, p + need);
        p += got.length;
        this.prefix = Buffer.concat([have, got]);
        if (this.prefix.length < 5) break;
        prefix = this.prefix;
        this.prefix = undefined;
      } else {
        prefix = data.subarray(p, p + 5);
        p += 5;
      }
      if (prefix[0]! > 1) return this.fail(GrpcStatus.INTERNAL, `a message's compressed flag is ${prefix[0]}`);
      const compressed = prefix[0] === 1;
      const size = prefix.readUInt32BE(1);
      if (compressed && !this.encoding) return this.fail(GrpcStatus.INTERNAL, 'a message is marked compressed, but the call has no grpc-encoding');
      const tooLarge = size > this.maxMessageBytes;
      if (tooLarge) this.handler?.oversized(size);
      if (this.ended) return;
      if (data.length - p >= size) {
        if (!tooLarge) this.deliver(compressed, data.subarray(p, p + size));
        p += size;
      } else {
        // Held as it arrives, not allocated for the size the prefix claims: a claim costs nothing until sent.
        this.partial = { compressed, size, keep: !tooLarge, parts: [], filled: 0 };
      }
    }
  }

  private deliver(compressed: boolean, bytes: Buffer): void {
    if (!compressed) return this.handler?.message(bytes);
    let plain: Buffer;
    try {
      const opts = { maxOutputLength: this.maxMessageBytes + 1 };
      plain = this.encoding === 'gzip' ? gunzipSync(bytes, opts) : inflateSync(bytes, opts);
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') return this.handler?.oversized(this.maxMessageBytes + 1);
      return this.fail(GrpcStatus.INTERNAL, `cannot decompress a ${this.encoding} message: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (plain.length > this.maxMessageBytes) return this.handler?.oversized(plain.length);
    this.handler?.message(plain);
  }

  private fail(code: number, details: string): void {
    this.end(code, details);
    this.handler?.cancelled();
  }

  /** Counts received DATA against the stream's window; returns false if the client overran it. */
  consume(n: number): boolean {
    this.recvWindow -= n;
    if (this.recvWindow < 0) return false;
    this.recvUnacked += n;
    if (this.recvUnacked >= STREAM_WINDOW / 2 && !this.remoteClosed) {
      this.conn.sendFrame(Frame.WINDOW_UPDATE, 0, this.id, u32(this.recvUnacked));
      this.recvWindow += this.recvUnacked;
      this.recvUnacked = 0;
    }
    return true;
  }

  /** The client reset the call or the connection is gone. */
  reset(): void {
    if (this.gone) return;
    this.gone = true;
    this.queue.length = 0;
    this.trailers = undefined;
    this.endWithData = false;
    this.plain = undefined;
    if (this.partial?.keep) this.conn.holdRequestBytes(-this.partial.filled);
    this.partial = undefined;
    this.handler?.cancelled();
  }
}

const RESPONSE_HEADERS = encodeHeaders([
  [':status', '200'],
  ['content-type', 'application/grpc'],
  ['grpc-accept-encoding', 'identity,deflate,gzip'],
]);

/** `grpc-message` is percent-encoded UTF-8 (gRPC over HTTP/2, "Responses"). */
function percentEncode(details: string): string {
  const bytes = Buffer.from(details, 'utf8').subarray(0, MAX_STATUS_MESSAGE);
  let out = '';
  for (const b of bytes) out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

function frameHeader(length: number, type: number, flags: number, id: number): Buffer {
  const h = Buffer.allocUnsafe(9);
  h.writeUIntBE(length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(id, 5);
  return h;
}

function u32(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(v, 0);
  return b;
}

/** A protocol violation that ends the connection (GOAWAY with its code). */
class ConnectionError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * How a stream that is no longer open ended, as far as frames arriving on it are concerned (RFC 9113 §5.1,
 * "closed"): after the client's END_STREAM a frame is a connection error, after its RST_STREAM a stream error
 * (both STREAM_CLOSED); after a reset of ours the client may still send what it sent before it heard, which is
 * dropped.
 */
type ClosedBy = 'ended' | 'reset' | 'ours';

/** One client connection. Created on a socket that is ready to read (TLS already negotiated). */
export class Connection {
  /** Send windows: the connection's, and the initial one for new streams (the peer's SETTINGS). */
  sendWindow = 65_535;
  peerInitialWindow = 65_535;
  peerMaxFrame = 16_384;
  /** Monotonic milliseconds of the last frame received; a keepalive PING goes to connections quiet for long. */
  lastReceived: number;
  /** When our keepalive PING went out, if it is unanswered. */
  pingSentAt: number | undefined;
  private readonly calls = new Map<number, Call>();
  /** The last {@link H2_LIMITS.closedStreams} streams closed, oldest first (a Map keeps insertion order). */
  private readonly closed = new Map<number, ClosedBy>();
  private readonly decoder = new HpackDecoder();
  private prefaceSeen = false;
  private settled = false;
  private pending: Buffer | undefined;
  private headerBlock: { id: number; endStream: boolean; selfDependent: boolean; parts: Buffer[]; size: number; frames: number } | undefined;
  private lastStreamId = 0;
  private recvWindow = CONNECTION_WINDOW;
  private recvUnacked = 0;
  private goingAway = false;
  private closedOnce = false;
  private corked = false;
  private owedControl = 0;
  /** Tokens left for resets of unanswered streams, and when they were last refilled. */
  private resetTokens: number = H2_LIMITS.unansweredResetBurst;
  private resetsRefilled: number;
  /** Bytes of request messages not yet complete, over every call (see {@link H2_LIMITS.bufferedRequestBytes}). */
  private heldRequestBytes = 0;
  /** Why the connection is going away, when the client was cut off; reported when it closes. */
  private problem: ConnectionProblem | undefined;
  /** Reading is paused until the next turn, having used this turn's frames. */
  private yielding = false;
  /** Holds on reading taken by the host (see {@link hold}). */
  private holds = 0;
  private blocked: Set<Call> | undefined;
  private certificate: PeerCertificate | null | undefined;

  constructor(
    private readonly socket: Socket | TLSSocket,
    private readonly host: ConnectionHost,
    private readonly now: () => number,
  ) {
    this.lastReceived = now();
    this.resetsRefilled = now();
    this.peer = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.onDrain());
    // The close that follows reports it; an error alone says nothing the peer needs.
    socket.on('error', () => {});
    socket.on('close', () => this.teardown());
    // Our SETTINGS, then the connection window raised above the protocol's 65,535.
    const settings = Buffer.allocUnsafe(18);
    settings.writeUInt16BE(3, 0); // MAX_CONCURRENT_STREAMS
    settings.writeUInt32BE(host.maxConcurrentStreams, 2);
    settings.writeUInt16BE(4, 6); // INITIAL_WINDOW_SIZE
    settings.writeUInt32BE(STREAM_WINDOW, 8);
    settings.writeUInt16BE(6, 12); // MAX_HEADER_LIST_SIZE
    settings.writeUInt32BE(host.maxHeaderListBytes, 14);
    this.sendFrame(Frame.SETTINGS, 0, 0, settings);
    this.sendFrame(Frame.WINDOW_UPDATE, 0, 0, u32(CONNECTION_WINDOW - 65_535));
  }

  /** `address:port` of the client. */
  readonly peer: string;

  /** The client's certificate, on a TLS connection where it presented one. */
  get peerCertificate(): PeerCertificate | undefined {
    if (this.certificate === undefined) {
      const c = 'getPeerCertificate' in this.socket ? this.socket.getPeerCertificate() : undefined;
      this.certificate = c && Object.keys(c).length > 0 ? c : null;
    }
    return this.certificate ?? undefined;
  }

  /** Open calls. */
  get callCount(): number {
    return this.calls.size;
  }

  /** Whether the socket's buffer is full: writers should wait for a drain. */
  get congested(): boolean {
    return this.socket.writableNeedDrain;
  }

  /**
   * Stops taking new calls (GOAWAY, NO_ERROR): open ones go on, and the connection closes once they end. New
   * streams the client opened before it read the GOAWAY are refused.
   */
  goAway(): void {
    if (this.goingAway) return;
    this.goingAway = true;
    this.sendFrame(Frame.GOAWAY, 0, 0, Buffer.concat([u32(this.lastStreamId), u32(H2Error.NO_ERROR)]));
    if (this.calls.size === 0) this.socket.end();
  }

  /** Closes at once: every call is cancelled. */
  destroy(): void {
    if ('resetAndDestroy' in this.socket && !('encrypted' in this.socket)) this.socket.resetAndDestroy();
    else this.socket.destroy();
  }

  /** Sends a keepalive PING (its ACK clears {@link pingSentAt}). */
  ping(): void {
    this.pingSentAt = this.now();
    this.sendFrame(Frame.PING, 0, 0, Buffer.alloc(8));
  }

  /** Writes one frame (corked until the end of this tick, so a turn's frames leave in one write). */
  sendFrame(type: number, flags: number, id: number, payload?: Buffer): void {
    if (this.socket.destroyed) return;
    this.cork();
    this.socket.write(frameHeader(payload?.length ?? 0, type, flags, id));
    if (payload && payload.length > 0) this.socket.write(payload);
  }

  /** Writes a frame already split into header and payload slices. */
  sendPieces(pieces: readonly Buffer[]): void {
    if (this.socket.destroyed) return;
    this.cork();
    for (const p of pieces) this.socket.write(p);
  }

  /** Sends what a call has queued; if the connection window stops it, it waits for a WINDOW_UPDATE. */
  pump(call: Call): void {
    if (!call.flush() && this.sendWindow <= 0) (this.blocked ??= new Set()).add(call);
  }

  /** A call has ended our side: it no longer counts as open. */
  forget(call: Call): void {
    if (!this.calls.delete(call.id)) return;
    this.blocked?.delete(call);
    this.remember(call.id, call.remoteClosed ? 'ended' : 'ours');
    if (this.goingAway && this.calls.size === 0) this.socket.end();
  }

  /**
   * Counts bytes a call holds in a request message not yet complete (negative when it lets them go); throws the
   * connection error when the connection's total passes {@link H2_LIMITS.bufferedRequestBytes}.
   */
  holdRequestBytes(n: number): void {
    this.heldRequestBytes += n;
    if (this.heldRequestBytes > H2_LIMITS.bufferedRequestBytes) {
      throw new ConnectionError(H2Error.ENHANCE_YOUR_CALM, `the client's unfinished request messages hold more than ${H2_LIMITS.bufferedRequestBytes} bytes`);
    }
  }

  /**
   * Stops handling the client's frames until {@link release}: the host has queued work for this connection behind
   * other connections', and reading more would only queue more. What was read stays unhandled; TCP pushes back.
   * Holds nest.
   */
  hold(): void {
    if (this.holds++ === 0) this.socket.pause();
  }

  /** Lets go of a {@link hold}; reading goes on in a later turn once no hold is left. */
  release(): void {
    if (--this.holds === 0) this.yieldTurn();
  }

  private remember(id: number, by: ClosedBy): void {
    this.closed.set(id, by);
    if (this.closed.size > H2_LIMITS.closedStreams) this.closed.delete(this.closed.keys().next().value!);
  }

  private cork(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    process.nextTick(() => {
      this.corked = false;
      this.socket.uncork();
    });
  }

  private onDrain(): void {
    this.owedControl = 0;
    for (const call of [...this.calls.values()]) call.notifyDrain();
  }

  /** The connection is over: every call is cancelled and the host told, once. */
  private teardown(problem = this.problem): void {
    if (this.closedOnce) return;
    this.closedOnce = true;
    const calls = [...this.calls.values()];
    this.calls.clear();
    for (const call of calls) call.reset();
    this.host.closed(this, problem);
  }

  private onData(chunk: Buffer): void {
    this.lastReceived = this.now();
    const data = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    this.readFrames(data);
  }

  /**
   * Handles the frames in `data`, at most {@link H2_LIMITS.framesPerTurn} of them: past that the socket is paused
   * and the rest handled next turn, so a client that floods the port takes its turn with the others.
   */
  private readFrames(input: Buffer): void {
    let data = input;
    try {
      if (!this.prefaceSeen) {
        const n = Math.min(data.length, PREFACE.length);
        if (!data.subarray(0, n).equals(PREFACE.subarray(0, n))) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'the client did not open with the HTTP/2 preface (is it speaking HTTP/1.1, or TLS to a plaintext port?)');
        if (data.length < PREFACE.length) {
          this.pending = Buffer.from(data);
          return;
        }
        this.prefaceSeen = true;
        data = data.subarray(PREFACE.length);
      }
      let p = 0;
      let frames = 0;
      while (data.length - p >= 9) {
        if (this.holds > 0) break;
        if (frames++ === H2_LIMITS.framesPerTurn) {
          this.yieldTurn();
          break;
        }
        const length = data.readUIntBE(p, 3);
        if (length > MAX_FRAME_IN) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, `a ${length}-byte frame exceeds the ${MAX_FRAME_IN}-byte limit`);
        if (data.length - p - 9 < length) break;
        const type = data[p + 3]!;
        const flags = data[p + 4]!;
        const id = data.readUInt32BE(p + 5) & 0x7fffffff;
        const payload = data.subarray(p + 9, p + 9 + length);
        p += 9 + length;
        this.frame(type, flags, id, payload);
        if (this.socket.destroyed || this.closedOnce) return;
      }
      // A leftover is copied, so that it does not hold the whole chunk.
      if (p < data.length) this.pending = Buffer.from(data.subarray(p));
    } catch (e) {
      if (e instanceof ConnectionError) this.fatal(e.code, 'protocol-error', e.message);
      else this.fatal(H2Error.INTERNAL_ERROR, 'internal-error', e instanceof Error ? (e.stack ?? e.message) : String(e));
    }
  }

  /** Pauses reading until a later turn, then handles what was left unhandled and reads on (unless held again). */
  private yieldTurn(): void {
    if (this.yielding) return;
    this.yielding = true;
    this.socket.pause();
    setImmediate(() => {
      this.yielding = false;
      if (this.closedOnce || this.socket.destroyed || this.holds > 0) return;
      const rest = this.pending;
      this.pending = undefined;
      if (rest) this.readFrames(rest);
      if (!this.yielding && this.holds === 0 && !this.closedOnce) this.socket.resume();
    });
  }

  private fatal(code: number, reason: ConnectionProblem['reason'], problem: string): void {
    if (this.closedOnce) return;
    if (this.prefaceSeen) this.sendFrame(Frame.GOAWAY, 0, 0, Buffer.concat([u32(this.lastStreamId), u32(code), Buffer.from(reason === 'protocol-error' ? problem.slice(0, 256) : 'internal error')]));
    this.teardown({ reason, message: problem });
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1_000).unref();
  }

  /**
   * Cuts a client off without failing what it already started: GOAWAY with the code and the last stream id, so
   * calls up to it go on (for {@link H2_LIMITS.goAwayGraceMs} at most) and later ones are refused.
   */
  private cutOff(code: number, problem: string): void {
    if (this.problem) return;
    this.problem = { reason: 'protocol-error', message: problem };
    this.goingAway = true;
    this.sendFrame(Frame.GOAWAY, 0, 0, Buffer.concat([u32(this.lastStreamId), u32(code), Buffer.from(problem.slice(0, 256))]));
    if (this.calls.size === 0) this.socket.end();
    setTimeout(() => this.destroy(), H2_LIMITS.goAwayGraceMs).unref();
  }

  private frame(type: number, flags: number, id: number, payload: Buffer): void {
    if (!this.settled && (type !== Frame.SETTINGS || flags & ACK)) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'the first frame after the preface must be SETTINGS');
    if (this.headerBlock && (type !== Frame.CONTINUATION || id !== this.headerBlock.id)) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'a header block was interrupted by another frame');
    switch (type) {
      case Frame.DATA:
        return this.onDataFrame(flags, id, payload);
      case Frame.HEADERS:
        return this.onHeaders(flags, id, payload);
      case Frame.CONTINUATION:
        return this.onContinuation(flags, id, payload);
      // Lengths are checked before stream ids, as frames are parsed before they are handled (nghttp2 does so too).
      case Frame.PRIORITY:
        // A stream error (RFC 9113 §6.3), where nghttp2 makes it a connection error.
        if (payload.length !== 5) {
          if (id === 0) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'PRIORITY must be 5 bytes');
          return this.resetStream(id, H2Error.FRAME_SIZE_ERROR);
        }
        if (id === 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        // A stream cannot depend on itself (RFC 9113 §5.3.1; RFC 7540 §5.3.1).
        if ((payload.readUInt32BE(0) & 0x7fffffff) === id) return this.resetStream(id, H2Error.PROTOCOL_ERROR);
        return;
      case Frame.RST_STREAM:
        return this.onReset(id, payload);
      case Frame.SETTINGS:
        return this.onSettings(flags, id, payload);
      case Frame.PUSH_PROMISE:
        throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'a client may not send PUSH_PROMISE');
      case Frame.PING:
        if (payload.length !== 8) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'PING must be 8 bytes');
        if (id !== 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'PING on a stream');
        if (flags & ACK) {
          this.pingSentAt = undefined;
          return;
        }
        this.owe();
        return this.sendFrame(Frame.PING, ACK, 0, Buffer.from(payload));
      case Frame.GOAWAY:
        if (id !== 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'GOAWAY on a stream');
        // The client opens no more streams; the ones it has run on until they end or it closes.
        return;
      case Frame.WINDOW_UPDATE:
        return this.onWindowUpdate(id, payload);
      default:
        // Unknown frame types are ignored (RFC 9113 §4.1).
        return;
    }
  }

  /** Each reply the client makes us send counts while it does not read them (see {@link H2_LIMITS.owedControlFrames}). */
  private owe(): void {
    if (this.socket.writableNeedDrain && ++this.owedControl > H2_LIMITS.owedControlFrames) {
      throw new ConnectionError(H2Error.ENHANCE_YOUR_CALM, `more than ${H2_LIMITS.owedControlFrames} PING, SETTINGS and RST_STREAM replies sent while the client does not read them`);
    }
  }

  /** Whether stream `id` is idle: one the client has not opened yet, or an even one, which only we could open (and never do). */
  private idle(id: number): boolean {
    return id > this.lastStreamId || id % 2 === 0;
  }

  private onReset(id: number, payload: Buffer): void {
    if (payload.length !== 4) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'RST_STREAM must be 4 bytes');
    if (id === 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (this.idle(id)) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `RST_STREAM on idle stream ${id}`);
    const call = this.calls.get(id);
    if (!call) return;
    if (!call.answered && !this.spendReset()) {
      this.drop(call, 'reset');
      return this.cutOff(H2Error.ENHANCE_YOUR_CALM, `the client reset more than ${H2_LIMITS.unansweredResetBurst} calls before they were answered (at over ${H2_LIMITS.resetRatePerSecond}/s)`);
    }
    this.drop(call, 'reset');
  }

  /** Takes one token for a reset of an unanswered stream; false when none is left. */
  private spendReset(): boolean {
    const t = this.now();
    this.resetTokens = Math.min(H2_LIMITS.unansweredResetBurst, this.resetTokens + ((t - this.resetsRefilled) / 1000) * H2_LIMITS.resetRatePerSecond);
    this.resetsRefilled = t;
    if (this.resetTokens < 1) return false;
    this.resetTokens--;
    return true;
  }

  private onSettings(flags: number, id: number, payload: Buffer): void {
    if (flags & ACK && payload.length !== 0) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'a SETTINGS ACK must be empty');
    if (payload.length % 6 !== 0) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'SETTINGS must be a multiple of 6 bytes');
    if (id !== 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & ACK) return;
    for (let p = 0; p < payload.length; p += 6) {
      const key = payload.readUInt16BE(p);
      const value = payload.readUInt32BE(p + 2);
      if (key === 2 && value > 1) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `SETTINGS_ENABLE_PUSH is ${value}`);
      if (key === 4) {
        if (value > MAX_WINDOW) throw new ConnectionError(H2Error.FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE is ${value}`);
        const delta = value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        for (const call of this.calls.values()) {
          call.sendWindow += delta;
          if (call.sendWindow > MAX_WINDOW) throw new ConnectionError(H2Error.FLOW_CONTROL_ERROR, 'a stream window exceeds 2^31-1');
        }
      }
      if (key === 5) {
        if (value < 16_384 || value > 16_777_215) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE is ${value}`);
        this.peerMaxFrame = value;
      }
    }
    this.owe();
    this.sendFrame(Frame.SETTINGS, ACK, 0);
    if (!this.settled) {
      this.settled = true;
      this.host.settled(this);
    }
    this.unblock(this.calls.values());
  }

  private onWindowUpdate(id: number, payload: Buffer): void {
    if (payload.length !== 4) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'WINDOW_UPDATE must be 4 bytes');
    const inc = payload.readUInt32BE(0) & 0x7fffffff;
    if (id === 0) {
      if (inc === 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'a connection WINDOW_UPDATE of 0');
      this.sendWindow += inc;
      if (this.sendWindow > MAX_WINDOW) throw new ConnectionError(H2Error.FLOW_CONTROL_ERROR, 'the connection window exceeds 2^31-1');
      const waiting = this.blocked;
      this.blocked = undefined;
      if (waiting) this.unblock(waiting);
      return;
    }
    if (this.idle(id)) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `WINDOW_UPDATE on idle stream ${id}`);
    const call = this.calls.get(id);
    // On a closed stream a WINDOW_UPDATE is allowed (the client may not yet know), and means nothing.
    if (!call) return;
    if (inc === 0) return this.resetStream(id, H2Error.PROTOCOL_ERROR);
    call.sendWindow += inc;
    if (call.sendWindow > MAX_WINDOW) return this.resetStream(id, H2Error.FLOW_CONTROL_ERROR);
    this.unblock([call]);
  }

  private unblock(calls: Iterable<Call>): void {
    for (const call of [...calls]) {
      if (call.ended && !this.calls.has(call.id)) continue;
      this.pump(call);
      call.notifyDrain();
    }
  }

  private onDataFrame(flags: number, id: number, payload: Buffer): void {
    if (id === 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'DATA on stream 0');
    // Padding counts against flow control as much as data does, on any stream.
    this.recvWindow -= payload.length;
    if (this.recvWindow < 0) throw new ConnectionError(H2Error.FLOW_CONTROL_ERROR, 'the client overran the connection window');
    this.recvUnacked += payload.length;
    if (this.recvUnacked >= CONNECTION_WINDOW / 2) {
      this.sendFrame(Frame.WINDOW_UPDATE, 0, 0, u32(this.recvUnacked));
      this.recvWindow += this.recvUnacked;
      this.recvUnacked = 0;
    }
    const data = unpad(flags, payload);
    const call = this.calls.get(id);
    if (!call) {
      if (this.idle(id)) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `DATA on idle stream ${id}`);
      // What the client sent before it heard our reset is dropped. On a stream it reset, or one long gone (where
      // RFC 9113 §5.1 allows either), a stream error, as Go's server does; after its END_STREAM, a connection error.
      const by = this.closed.get(id);
      if (by === 'ours') return;
      if (by === 'ended') throw new ConnectionError(H2Error.STREAM_CLOSED, `DATA on stream ${id} after the client ended it`);
      return this.resetStream(id, H2Error.STREAM_CLOSED);
    }
    if (call.remoteClosed) return this.resetStream(id, H2Error.STREAM_CLOSED);
    if (!call.consume(payload.length)) return this.resetStream(id, H2Error.FLOW_CONTROL_ERROR);
    call.receivedLength += data.length;
    if (call.expectedLength !== undefined && (call.receivedLength > call.expectedLength || (flags & END_STREAM && call.receivedLength !== call.expectedLength))) {
      // A malformed request (RFC 9113 §8.1.1).
      return this.resetStream(id, H2Error.PROTOCOL_ERROR);
    }
    if (data.length > 0) call.receive(data);
    if (flags & END_STREAM && this.calls.has(id)) call.remoteEnd();
  }

  private onHeaders(flags: number, id: number, payload: Buffer): void {
    if (id === 0 || id % 2 === 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `HEADERS on stream ${id}, which a client may not open`);
    let block = unpad(flags, payload);
    let selfDependent = false;
    if (flags & PRIORITY_FLAG) {
      if (block.length < 5) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'HEADERS too short for its priority');
      // Depending on itself is a stream error (RFC 9113 §5.3.1), once the block is decoded to keep HPACK in step.
      selfDependent = (block.readUInt32BE(0) & 0x7fffffff) === id;
      block = block.subarray(5);
    }
    this.headerBlock = { id, endStream: (flags & END_STREAM) !== 0, selfDependent, parts: [Buffer.from(block)], size: block.length, frames: 0 };
    if (flags & END_HEADERS) this.endHeaderBlock();
  }

  private onContinuation(flags: number, id: number, payload: Buffer): void {
    const block = this.headerBlock;
    if (!block) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `CONTINUATION on stream ${id} without HEADERS`);
    if (++block.frames > H2_LIMITS.continuationFrames) throw new ConnectionError(H2Error.ENHANCE_YOUR_CALM, `a header block takes more than ${H2_LIMITS.continuationFrames} CONTINUATION frames`);
    block.size += payload.length;
    const limit = 2 * this.host.maxHeaderListBytes + 16_384;
    if (block.size > limit) throw new ConnectionError(H2Error.ENHANCE_YOUR_CALM, `a header block exceeds ${limit} bytes`);
    // Copied: a slice would keep the whole chunk it came in alive.
    if (payload.length > 0) block.parts.push(Buffer.from(payload));
    if (flags & END_HEADERS) this.endHeaderBlock();
  }

  private endHeaderBlock(): void {
    const { id, endStream, selfDependent, parts } = this.headerBlock!;
    this.headerBlock = undefined;
    let decoded;
    try {
      // Decoded even for a stream that is refused or gone: the table must stay in step with the client's.
      decoded = this.decoder.decode(parts.length === 1 ? parts[0]! : Buffer.concat(parts), this.host.maxHeaderListBytes);
    } catch (e) {
      if (e instanceof HpackError) throw new ConnectionError(H2Error.COMPRESSION_ERROR, e.message);
      throw e;
    }
    const existing = this.calls.get(id);
    if (existing) {
      // Trailers from the client: they must end its side, and carry no pseudo-header (RFC 9113 §8.1).
      if (existing.remoteClosed) return this.resetStream(id, H2Error.STREAM_CLOSED);
      if (!endStream || selfDependent || (!decoded.tooLarge && !checkTrailers(decoded.fields))) return this.resetStream(id, H2Error.PROTOCOL_ERROR);
      if (existing.expectedLength !== undefined && existing.receivedLength !== existing.expectedLength) return this.resetStream(id, H2Error.PROTOCOL_ERROR);
      return existing.remoteEnd();
    }
    if (id <= this.lastStreamId) {
      const by = this.closed.get(id);
      // Trailers the client sent before it heard our reset.
      if (by === 'ours') return;
      if (by === 'reset') return this.resetStream(id, H2Error.STREAM_CLOSED);
      if (by === 'ended') throw new ConnectionError(H2Error.STREAM_CLOSED, `HEADERS on stream ${id}, which the client already ended`);
      throw new ConnectionError(H2Error.PROTOCOL_ERROR, `HEADERS on stream ${id}, lower than stream ${this.lastStreamId} already opened`);
    }
    this.lastStreamId = id;
    if (this.goingAway || this.calls.size >= this.host.maxConcurrentStreams) return this.refuse(id, H2Error.REFUSED_STREAM, endStream);
    if (selfDependent) return this.refuse(id, H2Error.PROTOCOL_ERROR, endStream);
    if (decoded.tooLarge) {
      const call = this.open(new Call(this, id, ''));
      call.remoteClosed = endStream;
      call.end(GrpcStatus.RESOURCE_EXHAUSTED, `request headers exceed ${this.host.maxHeaderListBytes} bytes`);
      if (endStream && this.calls.has(id)) call.remoteEnd();
      return;
    }
    // A malformed request is a stream error (RFC 9113 §8.1.1).
    const request = checkRequestHeaders(decoded.fields);
    if (!request.success) return this.refuse(id, H2Error.PROTOCOL_ERROR, endStream);
    const { method, path, contentLength } = request.value;
    if (endStream && contentLength !== undefined && contentLength !== 0) return this.refuse(id, H2Error.PROTOCOL_ERROR, endStream);
    const call = this.open(new Call(this, id, path));
    call.expectedLength = contentLength;
    // Known before the call is routed, so that an answer given at once does not reset a stream the client ended.
    call.remoteClosed = endStream;
    if (method !== 'POST') call.rejectHttp(405, [['allow', 'POST']]);
    else this.host.open(call, decoded.fields);
    if (endStream && this.calls.has(id)) call.remoteEnd();
  }

  private open(call: Call): Call {
    this.calls.set(call.id, call);
    return call;
  }

  /** A stream closed before it was opened: the reply counts as owed, and the id is remembered. */
  private refuse(id: number, code: number, endStream: boolean): void {
    this.owe();
    this.sendFrame(Frame.RST_STREAM, 0, id, u32(code));
    this.remember(id, endStream ? 'ended' : 'ours');
  }

  private resetStream(id: number, code: number): void {
    this.owe();
    this.sendFrame(Frame.RST_STREAM, 0, id, u32(code));
    const call = this.calls.get(id);
    if (call) this.drop(call, call.remoteClosed ? 'ended' : 'ours');
  }

  /** A call reset by either side: forgotten, and its handler told. */
  private drop(call: Call, by: ClosedBy): void {
    this.calls.delete(call.id);
    this.blocked?.delete(call);
    this.remember(call.id, by);
    call.reset();
    if (this.goingAway && this.calls.size === 0) this.socket.end();
  }
}

/** A DATA or HEADERS payload without its padding; throws if the padding is longer than the frame. */
function unpad(flags: number, payload: Buffer): Buffer {
  if (!(flags & PADDED)) return payload;
  if (payload.length < 1) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'a padded frame without its pad length');
  const pad = payload[0]!;
  if (pad >= payload.length) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'padding longer than its frame');
  return payload.subarray(1, payload.length - pad);
}
