import type { Socket } from 'node:net';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { gunzipSync, inflateSync } from 'node:zlib';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { encodeHeaders, HpackDecoder, HpackError, type HeaderField } from './hpack.js';

/**
 * The server side of HTTP/2 (RFC 9113) for gRPC, on a socket of its own: frames, HPACK, flow control both ways,
 * PING, GOAWAY and RST_STREAM, and gRPC's message framing and trailers on top. It is what a gRPC server needs and
 * no more: no push, no priorities (accepted and ignored), no HTTP/1.1. Why not `node:http2`: nghttp2 holds about
 * 23 KiB per connection (a 16 KiB frame buffer among it) and Node's session objects several more; an xDS server
 * keeps one connection per Envoy open for days, mostly idle, and this keeps each to a few hundred bytes of state
 * above the socket. Outgoing messages are written as slices of the caller's buffer, never copied, so one
 * response shared by thousands of streams stays one buffer.
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
/** Control frames (PING and SETTINGS acknowledgements) owed while the socket does not drain, before the peer is cut off. */
const MAX_OWED_CONTROL = 10_000;
/**
 * Calls the client may reset within {@link RESET_WINDOW_MS} before it is cut off: opening and resetting streams
 * in a loop makes the server do work the client never waits for (CVE-2023-44487, "rapid reset").
 */
const MAX_RESETS = 1_000;
const RESET_WINDOW_MS = 10_000;
/** Longest `grpc-message` sent; longer details are cut (a header block must fit the peer's frame limits). */
const MAX_STATUS_MESSAGE = 4_096;

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
   * client broke the protocol, or handling its frames threw (a bug of ours, confined to its connection).
   */
  closed(conn: Connection, problem?: { readonly reason: 'protocol-error' | 'internal-error'; readonly message: string }): void;
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

/** One unsent message: its gRPC prefix and body, and how much of the two is already sent. */
interface Outgoing {
  readonly prefix: Buffer;
  readonly body: Buffer;
  sent: number;
}

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
  private recvUnacked = 0;
  private readonly queue: Outgoing[] = [];
  private headersSent = false;
  private trailers: Buffer | undefined;
  /** Our side has sent (or queued) its trailers. */
  localClosed = false;
  /** The client has half-closed. */
  remoteClosed = false;
  private gone = false;
  private wantsDrain = false;
  /** A request message in the making, when one spans DATA frames. */
  private partial: { readonly compressed: boolean; readonly size: number; readonly body: Buffer | undefined; filled: number } | undefined;
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

  /**
   * Queues one response message; its bytes are sent as they are, not copied, so they must not change. Returns
   * false when the peer is not keeping up (flow control, or the socket's buffer is full): the handler's `drain`
   * follows once it has.
   */
  write(message: Buffer): boolean {
    if (this.ended) return false;
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
   * Answers a request that is not gRPC with a bare HTTP status (415 for a content type that is not gRPC's), and
   * ends the stream.
   */
  rejectHttp(status: number): void {
    if (this.ended || this.headersSent) return;
    this.localClosed = true;
    this.headersSent = true;
    this.trailers = encodeHeaders([[':status', String(status)]]);
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
      const total = 5 + m.body.length;
      const n = Math.min(total - m.sent, this.sendWindow, conn.sendWindow, conn.peerMaxFrame);
      if (n <= 0) return false;
      const header = frameHeader(n, Frame.DATA, 0, this.id);
      const pieces: Buffer[] = [header];
      let from = m.sent;
      const to = m.sent + n;
      if (from < 5) {
        pieces.push(m.prefix.subarray(from, Math.min(5, to)));
        from = Math.min(5, to);
      }
      if (to > from) pieces.push(m.body.subarray(from - 5, to - 5));
      conn.sendPieces(pieces);
      m.sent = to;
      this.sendWindow -= n;
      conn.sendWindow -= n;
      if (m.sent === total) this.queue.shift();
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

  /** DATA for this call: gRPC messages, possibly split across frames. */
  receive(data: Buffer): void {
    let p = 0;
    while (p < data.length && !this.ended) {
      if (this.partial) {
        const part = this.partial;
        const n = Math.min(part.size - part.filled, data.length - p);
        part.body?.set(data.subarray(p, p + n), part.filled);
        part.filled += n;
        p += n;
        if (part.filled < part.size) break;
        this.partial = undefined;
        if (part.body) this.deliver(part.compressed, part.body);
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
        this.partial = { compressed, size, body: tooLarge ? undefined : Buffer.allocUnsafe(size), filled: 0 };
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
  private readonly decoder = new HpackDecoder();
  private prefaceSeen = false;
  private settled = false;
  private pending: Buffer | undefined;
  private headerBlock: { id: number; endStream: boolean; parts: Buffer[]; size: number } | undefined;
  private lastStreamId = 0;
  private recvWindow = CONNECTION_WINDOW;
  private recvUnacked = 0;
  private goingAway = false;
  private closedOnce = false;
  private corked = false;
  private owedControl = 0;
  private resets = 0;
  private resetsSince = 0;
  private blocked: Set<Call> | undefined;
  private certificate: PeerCertificate | null | undefined;

  constructor(
    private readonly socket: Socket | TLSSocket,
    private readonly host: ConnectionHost,
    private readonly now: () => number,
  ) {
    this.lastReceived = now();
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

  /** A call has sent its trailers: it no longer counts as open. */
  forget(call: Call): void {
    this.calls.delete(call.id);
    this.blocked?.delete(call);
    if (this.goingAway && this.calls.size === 0) this.socket.end();
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
  private teardown(problem?: Parameters<ConnectionHost['closed']>[1]): void {
    if (this.closedOnce) return;
    this.closedOnce = true;
    const calls = [...this.calls.values()];
    this.calls.clear();
    for (const call of calls) call.reset();
    this.host.closed(this, problem);
  }

  private onData(chunk: Buffer): void {
    this.lastReceived = this.now();
    let data = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
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
      while (data.length - p >= 9) {
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
      // A short leftover is copied, so that it does not hold the whole chunk.
      if (p < data.length) this.pending = Buffer.from(data.subarray(p));
    } catch (e) {
      if (e instanceof ConnectionError) this.fatal(e.code, 'protocol-error', e.message);
      else this.fatal(H2Error.INTERNAL_ERROR, 'internal-error', e instanceof Error ? (e.stack ?? e.message) : String(e));
    }
  }

  private fatal(code: number, reason: 'protocol-error' | 'internal-error', problem: string): void {
    if (this.closedOnce) return;
    if (this.prefaceSeen) this.sendFrame(Frame.GOAWAY, 0, 0, Buffer.concat([u32(this.lastStreamId), u32(code), Buffer.from(reason === 'protocol-error' ? problem.slice(0, 256) : 'internal error')]));
    this.teardown({ reason, message: problem });
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1_000).unref();
  }

  private frame(type: number, flags: number, id: number, payload: Buffer): void {
    if (!this.settled && (type !== Frame.SETTINGS || flags & ACK)) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'the first frame after the preface must be SETTINGS');
    if (this.headerBlock && (type !== Frame.CONTINUATION || id !== this.headerBlock.id)) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'a header block was interrupted by another frame');
    switch (type) {
      case Frame.DATA:
        return this.onDataFrame(flags, id, payload);
      case Frame.HEADERS:
        return this.onHeaders(flags, id, payload);
      case Frame.CONTINUATION: {
        const block = this.headerBlock;
        if (!block) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'CONTINUATION without HEADERS');
        block.parts.push(payload);
        block.size += payload.length;
        if (block.size > 2 * this.host.maxHeaderListBytes + 16_384) throw new ConnectionError(H2Error.ENHANCE_YOUR_CALM, `a header block exceeds ${2 * this.host.maxHeaderListBytes + 16_384} bytes`);
        if (flags & END_HEADERS) {
          this.headerBlock = undefined;
          this.onHeaderBlock(block.id, block.endStream, Buffer.concat(block.parts));
        }
        return;
      }
      case Frame.PRIORITY:
        if (id === 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if (payload.length !== 5) this.resetStream(id, H2Error.FRAME_SIZE_ERROR);
        return;
      case Frame.RST_STREAM: {
        if (id === 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
        if (payload.length !== 4) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'RST_STREAM must be 4 bytes');
        if (id > this.lastStreamId) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `RST_STREAM on idle stream ${id}`);
        const call = this.calls.get(id);
        if (call) {
          const t = this.now();
          if (t - this.resetsSince > RESET_WINDOW_MS) {
            this.resetsSince = t;
            this.resets = 0;
          }
          if (++this.resets > MAX_RESETS) throw new ConnectionError(H2Error.ENHANCE_YOUR_CALM, `the client reset more than ${MAX_RESETS} calls within ${RESET_WINDOW_MS / 1000} s`);
          this.drop(call);
        }
        return;
      }
      case Frame.SETTINGS:
        return this.onSettings(flags, id, payload);
      case Frame.PUSH_PROMISE:
        throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'a client may not send PUSH_PROMISE');
      case Frame.PING:
        if (id !== 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'PING on a stream');
        if (payload.length !== 8) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'PING must be 8 bytes');
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

  private owe(): void {
    if (this.socket.writableNeedDrain && ++this.owedControl > MAX_OWED_CONTROL) {
      throw new ConnectionError(H2Error.ENHANCE_YOUR_CALM, `more than ${MAX_OWED_CONTROL} PING/SETTINGS frames sent while not reading our replies`);
    }
  }

  private onSettings(flags: number, id: number, payload: Buffer): void {
    if (id !== 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & ACK) {
      if (payload.length !== 0) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'a SETTINGS ACK must be empty');
      return;
    }
    if (payload.length % 6 !== 0) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'SETTINGS must be a multiple of 6 bytes');
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
    const call = this.calls.get(id);
    if (!call) {
      if (id > this.lastStreamId) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `WINDOW_UPDATE on idle stream ${id}`);
      return;
    }
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
    // Padding counts against flow control as much as data does.
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
      if (id > this.lastStreamId) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `DATA on idle stream ${id}`);
      // A call we ended: what the client sent before it heard is dropped.
      return;
    }
    if (call.remoteClosed) return this.resetStream(id, H2Error.STREAM_CLOSED);
    if (!call.consume(payload.length)) return this.resetStream(id, H2Error.FLOW_CONTROL_ERROR);
    if (data.length > 0) call.receive(data);
    if (flags & END_STREAM) this.remoteEnd(call);
  }

  private onHeaders(flags: number, id: number, payload: Buffer): void {
    if (id === 0 || id % 2 === 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `HEADERS on stream ${id}, which a client may not open`);
    let block = unpad(flags, payload);
    if (flags & PRIORITY_FLAG) {
      if (block.length < 5) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'HEADERS too short for its priority');
      block = block.subarray(5);
    }
    if (flags & END_HEADERS) return this.onHeaderBlock(id, (flags & END_STREAM) !== 0, block);
    this.headerBlock = { id, endStream: (flags & END_STREAM) !== 0, parts: [Buffer.from(block)], size: block.length };
  }

  private onHeaderBlock(id: number, endStream: boolean, block: Buffer): void {
    let decoded;
    try {
      // Decoded even for a stream that is refused or gone: the table must stay in step with the client's.
      decoded = this.decoder.decode(block, this.host.maxHeaderListBytes);
    } catch (e) {
      if (e instanceof HpackError) throw new ConnectionError(H2Error.COMPRESSION_ERROR, e.message);
      throw e;
    }
    const existing = this.calls.get(id);
    if (existing) {
      // Trailers from the client: they must end its side.
      if (!endStream) return this.resetStream(id, H2Error.PROTOCOL_ERROR);
      return this.remoteEnd(existing);
    }
    if (id <= this.lastStreamId) return;
    this.lastStreamId = id;
    if (this.goingAway || this.calls.size >= this.host.maxConcurrentStreams) return this.resetStream(id, H2Error.REFUSED_STREAM);
    const headers = decoded.fields;
    const path = headers.find(([n]) => n === ':path')?.[1];
    const method = headers.find(([n]) => n === ':method')?.[1];
    if (!decoded.tooLarge && (!path || method === undefined || !headers.some(([n]) => n === ':scheme'))) return this.resetStream(id, H2Error.PROTOCOL_ERROR);
    const call = new Call(this, id, path ?? '');
    this.calls.set(id, call);
    if (decoded.tooLarge) call.end(GrpcStatus.RESOURCE_EXHAUSTED, `request headers exceed ${this.host.maxHeaderListBytes} bytes`);
    else if (method !== 'POST') call.end(GrpcStatus.UNIMPLEMENTED, `gRPC calls are POST, not ${method}`);
    else this.host.open(call, headers);
    if (endStream && this.calls.has(id)) this.remoteEnd(call);
  }

  private remoteEnd(call: Call): void {
    call.remoteClosed = true;
    if (!call.ended) call.handler?.halfClosed();
  }

  private resetStream(id: number, code: number): void {
    this.sendFrame(Frame.RST_STREAM, 0, id, u32(code));
    const call = this.calls.get(id);
    if (call) this.drop(call);
  }

  /** A call reset by either side: forgotten, and its handler told. */
  private drop(call: Call): void {
    this.forget(call);
    call.reset();
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
