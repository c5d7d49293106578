import net from 'node:net';
import { encodeHeaders, HpackDecoder } from '../../src/grpc/hpack.js';
import { eventually } from './harness.js';

/** One HTTP/2 frame as received. */
export interface RawFrame {
  readonly type: number;
  readonly flags: number;
  readonly id: number;
  readonly payload: Buffer;
}

/** An HTTP/2 client written frame by frame, to put the server through what well-behaved clients never do. */
export class RawClient {
  readonly frames: RawFrame[] = [];
  closed = false;
  private buf = Buffer.alloc(0);
  private readonly decoder = new HpackDecoder();
  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      while (this.buf.length >= 9) {
        const len = this.buf.readUIntBE(0, 3);
        if (this.buf.length < 9 + len) break;
        this.frames.push({ type: this.buf[3]!, flags: this.buf[4]!, id: this.buf.readUInt32BE(5) & 0x7fffffff, payload: this.buf.subarray(9, 9 + len) });
        this.buf = this.buf.subarray(9 + len);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => (this.closed = true));
  }

  /** Connects and sends the preface and SETTINGS (`settings` as id/value pairs). */
  static async open(port: number, settings: [number, number][] = [], preface = true): Promise<RawClient> {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    const c = new RawClient(socket);
    if (preface) {
      socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
      const s = Buffer.alloc(6 * settings.length);
      settings.forEach(([k, v], i) => (s.writeUInt16BE(k, 6 * i), s.writeUInt32BE(v, 6 * i + 2)));
      c.send(4, 0, 0, s);
    }
    return c;
  }

  send(type: number, flags: number, id: number, payload: Buffer = Buffer.alloc(0)): void {
    const h = Buffer.alloc(9);
    h.writeUIntBE(payload.length, 0, 3);
    h[3] = type;
    h[4] = flags;
    h.writeUInt32BE(id, 5);
    this.socket.write(Buffer.concat([h, payload]));
  }

  request(id: number, path: string, extra: [string, string][] = [], endStream = false): void {
    const fields: [string, string][] = [[':method', 'POST'], [':scheme', 'http'], [':path', path], [':authority', 'x'], ['content-type', 'application/grpc'], ...extra];
    this.send(1, 0x4 | (endStream ? 1 : 0), id, encodeHeaders(fields));
  }

  message(id: number, body: Buffer, o: { compressed?: boolean; endStream?: boolean } = {}): void {
    const prefix = Buffer.alloc(5);
    prefix[0] = o.compressed ? 1 : 0;
    prefix.writeUInt32BE(body.length, 1);
    this.send(0, o.endStream ? 1 : 0, id, Buffer.concat([prefix, body]));
  }

  /** Waits for a frame that `match` accepts. */
  async next(match: (f: RawFrame) => boolean, what: string): Promise<RawFrame> {
    await eventually(() => this.frames.some(match), what);
    return this.frames.find(match)!;
  }

  /** Waits for the server to end stream `id` with HEADERS carrying END_STREAM (a status, or trailers). */
  ended(id: number, what: string): Promise<RawFrame> {
    return this.next((f) => f.type === 1 && f.id === id && (f.flags & 1) === 1, what);
  }

  /** Every header block received on stream `id`, decoded in order (the table is the connection's). */
  headers(id: number): Record<string, string>[] {
    return this.frames.filter((f) => f.type === 1).map((f) => [f.id, Object.fromEntries(this.decoder.decode(f.payload, 1e6).fields)] as const).filter(([i]) => i === id).map(([, h]) => h);
  }

  /** DATA received on stream `id`, joined. */
  data(id: number): Buffer {
    return Buffer.concat(this.frames.filter((f) => f.type === 0 && f.id === id).map((f) => f.payload));
  }

  close(): void {
    this.socket.destroy();
  }
}

