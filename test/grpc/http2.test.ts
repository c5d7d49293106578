import http2 from 'node:http2';
import net from 'node:net';
import { gzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { encodeHeaders, HpackDecoder } from '../../src/grpc/hpack.js';
import { H2Error } from '../../src/grpc/http2.js';
import { createGrpcServer, type GrpcMethod, type GrpcServer } from '../../src/grpc/server.js';
import { createMemoryLogger } from '../../src/observability/log.js';
import { createMetrics, type Metrics } from '../../src/observability/metrics.js';
import { eventually } from '../support/harness.js';

interface RawFrame {
  readonly type: number;
  readonly flags: number;
  readonly id: number;
  readonly payload: Buffer;
}

/** An HTTP/2 client written frame by frame, to put the server through what well-behaved clients never do. */
class RawClient {
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

const goaway = (f: RawFrame) => f.type === 7;
const goawayCode = (f: RawFrame) => f.payload.readUInt32BE(4);

describe('the gRPC transport (our own HTTP/2; raw-frame and Node clients on loopback)', function () {
  this.timeout(20_000);
  let server: GrpcServer;
  let metrics: Metrics;
  let port: number;
  const clients: RawClient[] = [];
  /** What each `/t.T/Big` call's writes returned, and its drains. */
  const writes: boolean[] = [];
  let drains = 0;
  const BIG = Buffer.alloc(300_000, 7);
  for (let i = 0; i < BIG.length; i += 4) BIG.writeUInt32BE(i, i);

  const methods: GrpcMethod[] = [
    {
      // Answers each message with three copies of BIG, then OK once the client half-closes.
      path: '/t.T/Big',
      maxMessageBytes: 1024,
      start: (call) => ({
        message: () => [0, 1, 2].forEach(() => writes.push(call.write(BIG))),
        oversized: (n) => call.end(grpc.status.RESOURCE_EXHAUSTED, `${n} bytes is too many`),
        halfClosed: () => call.end(grpc.status.OK),
        cancelled: () => undefined,
        drain: () => drains++,
      }),
    },
    {
      // Answers each message with its length, as 4 bytes.
      path: '/t.T/Len',
      maxMessageBytes: 1 << 20,
      start: (call) => ({
        message: (b) => {
          const out = Buffer.alloc(4);
          out.writeUInt32BE(b.length);
          call.write(out);
        },
        oversized: (n) => call.end(grpc.status.RESOURCE_EXHAUSTED, `${n} bytes is too many`),
        halfClosed: () => call.end(grpc.status.OK),
        cancelled: () => undefined,
        drain: () => undefined,
      }),
    },
    {
      path: '/t.T/Throw',
      maxMessageBytes: 1024,
      start: () => ({
        message: () => {
          throw new Error('a handler bug');
        },
        oversized: () => undefined,
        halfClosed: () => undefined,
        cancelled: () => undefined,
        drain: () => undefined,
      }),
    },
  ];

  const start = async (o: Partial<Parameters<typeof createGrpcServer>[0]> = {}) => {
    metrics = createMetrics();
    server = createGrpcServer({ methods, log: createMemoryLogger(), metrics, ...o });
    port = await server.listen('127.0.0.1', 0);
  };
  const raw = async (settings: [number, number][] = [], preface = true) => {
    const c = await RawClient.open(port, settings, preface);
    clients.push(c);
    return c;
  };
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    writes.length = 0;
    drains = 0;
    await server.shutdown(100);
  });

  it('sends no more than the client\'s windows allow, and the rest when they open; the handler hears of the drain', async () => {
    await start();
    // A 1,000-byte stream window; the connection's stays 65,535.
    const c = await raw([[4, 1_000]]);
    c.request(1, '/t.T/Big');
    c.message(1, Buffer.from('go'));
    await eventually(() => writes.length === 3, 'three writes');
    await c.next((f) => f.type === 0 && f.id === 1, 'the first DATA');
    expect(writes, 'every write was refused: the window is full').to.deep.equal([false, false, false]);
    expect(c.data(1).length).to.equal(1_000);
    // The connection window (65,535) now binds: open the stream's wide, then the connection's in steps.
    c.send(8, 0, 1, Buffer.from([0x7f, 0, 0, 0]));
    await eventually(() => c.data(1).length === 65_535, 'the connection window filled');
    expect(drains).to.equal(0);
    const total = 3 * (5 + BIG.length);
    c.send(8, 0, 0, Buffer.from([0, 0x10, 0, 0]));
    await eventually(() => c.data(1).length === total, 'every message');
    expect(drains).to.equal(1);
    // The frames respected the default 16,384-byte limit, and the messages arrived whole and in order.
    expect(c.frames.filter((f) => f.type === 0).every((f) => f.payload.length <= 16_384)).to.equal(true);
    const body = c.data(1);
    for (let i = 0; i < 3; i++) {
      const at = i * (5 + BIG.length);
      expect(body.readUInt32BE(at + 1)).to.equal(BIG.length);
      expect(body.subarray(at + 5, at + 5 + BIG.length).equals(BIG), `message ${i}`).to.equal(true);
    }
    c.send(0, 1, 1);
    await c.next((f) => f.type === 1 && (f.flags & 1) === 1, 'the trailers');
    expect(c.headers(1).at(-1)).to.include({ 'grpc-status': '0' });
  });

  it('reads messages split across frames, a split prefix, gzip and deflate; refuses an oversized one', async () => {
    await start();
    const c = await raw();
    c.request(1, '/t.T/Len', [['grpc-encoding', 'gzip']]);
    const big = Buffer.alloc(100_000, 1);
    const framed = Buffer.concat([Buffer.from([0, 0, 1, 0x86, 0xa0]), big]);
    // 3 bytes of the prefix, then the rest in frames of up to 16 KiB.
    for (let p = 0, n = 3; p < framed.length; p += n, n = 16_384) c.send(0, 0, 1, framed.subarray(p, p + n));
    c.message(1, gzipSync(Buffer.alloc(5_000, 2)), { compressed: true });
    c.message(1, Buffer.alloc(0), { endStream: true });
    await c.next((f) => f.type === 1 && (f.flags & 1) === 1, 'the trailers');
    const lengths = c.data(1);
    expect([0, 1, 2].map((i) => lengths.readUInt32BE(i * 9 + 5))).to.deep.equal([100_000, 5_000, 0]);
    expect(c.headers(1).at(-1)).to.include({ 'grpc-status': '0' });

    c.request(3, '/t.T/Big');
    c.message(3, Buffer.alloc(2_000));
    await c.next((f) => f.type === 1 && f.id === 3 && (f.flags & 1) === 1, 'the status');
    expect(c.headers(3)[0]).to.include({ 'grpc-status': String(grpc.status.RESOURCE_EXHAUSTED), 'grpc-message': '2000 bytes is too many' });
    // The client had not half-closed: it is told to stop sending (RST_STREAM NO_ERROR).
    expect(c.frames.some((f) => f.type === 3 && f.id === 3 && f.payload.readUInt32BE(0) === H2Error.NO_ERROR)).to.equal(true);
  });

  it('answers an unknown method UNIMPLEMENTED, an unknown encoding UNIMPLEMENTED, and a request that is not gRPC 415', async () => {
    await start();
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const err = await new Promise<grpc.ServiceError | null>((resolve) => client.makeUnaryRequest('/no.Such/Method', (x: Buffer) => x, (x: Buffer) => x, Buffer.alloc(0), (e) => resolve(e)));
    client.close();
    expect(err?.code).to.equal(grpc.status.UNIMPLEMENTED);
    expect(err?.details).to.equal('/no.Such/Method is not a method this server implements');

    const c = await raw();
    c.request(1, '/t.T/Len', [['grpc-encoding', 'snappy']]);
    await c.next((f) => f.type === 1 && f.id === 1, 'the status');
    expect(c.headers(1)[0]).to.include({ ':status': '200', 'grpc-status': String(grpc.status.UNIMPLEMENTED) });

    const session = http2.connect(`http://127.0.0.1:${port}`);
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': '/t.T/Len', 'content-type': 'application/json' });
      req.on('response', (h) => resolve(h[':status']));
      req.on('error', reject);
      req.end('{}');
    });
    session.destroy();
    expect(status).to.equal(415);
  });

  it('ends a connection that breaks the protocol with GOAWAY and the error code, counted; other connections go on', async () => {
    await start();
    const good = await raw();
    const cases: [string, (c: RawClient) => void, number][] = [
      ['a frame over 16,384 bytes', (c) => c.send(0, 0, 1, Buffer.alloc(20_000)), H2Error.FRAME_SIZE_ERROR],
      ['DATA on stream 0', (c) => c.send(0, 0, 0, Buffer.alloc(4)), H2Error.PROTOCOL_ERROR],
      ['a header block that is not HPACK', (c) => c.send(1, 0x5, 1, Buffer.from([0x80])), H2Error.COMPRESSION_ERROR],
      ['a stream id the client may not use', (c) => c.send(1, 0x5, 2, encodeHeaders([[':path', '/']])), H2Error.PROTOCOL_ERROR],
      ['a header block interrupted', (c) => (c.send(1, 0, 1, encodeHeaders([[':path', '/']])), c.send(6, 0, 0, Buffer.alloc(8))), H2Error.PROTOCOL_ERROR],
      ['a window overflow', (c) => (c.send(8, 0, 0, Buffer.from([0x7f, 0xff, 0xff, 0xff]))), H2Error.FLOW_CONTROL_ERROR],
    ];
    for (const [what, act, code] of cases) {
      const c = await raw();
      act(c);
      const f = await c.next(goaway, `GOAWAY after ${what}`);
      expect(goawayCode(f), what).to.equal(code);
      await eventually(() => c.closed, `closed after ${what}`);
    }
    // Speaking HTTP/1.1: no preface, so no GOAWAY either; just closed.
    const h1 = await raw([], false);
    h1.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await eventually(() => h1.closed, 'the HTTP/1.1 client closed');
    expect(await metrics.value('inferplane_connections_closed_total', { reason: 'protocol-error' })).to.equal(cases.length + 1);
    // The well-behaved connection is still served.
    good.request(1, '/t.T/Len');
    good.message(1, Buffer.alloc(3), { endStream: true });
    await good.next((f) => f.type === 1 && (f.flags & 1) === 1, 'its trailers');
    expect(good.headers(1).at(-1)).to.include({ 'grpc-status': '0' });
  });

  it('cuts off a client that floods PINGs without reading the answers (ENHANCE_YOUR_CALM)', async () => {
    await start();
    const c = await raw();
    c.socket.pause();
    const ping = Buffer.from([0, 0, 8, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    // 400,000 PINGs: their answers (6.8 MB) overflow the socket buffers on both sides.
    c.socket.write(Buffer.concat(Array.from({ length: 400_000 }, () => ping)));
    await eventually(async () => (await metrics.value('inferplane_connections_closed_total', { reason: 'protocol-error' })) === 1, 'the flooding connection cut off', 10_000);
  });

  it('cuts off a client that opens and resets calls in a loop (rapid reset), but not one that resets a few', async () => {
    await start();
    const few = await raw();
    for (let i = 0; i < 100; i++) {
      few.request(2 * i + 1, '/t.T/Len');
      few.send(3, 0, 2 * i + 1, Buffer.from([0, 0, 0, H2Error.CANCEL]));
    }
    const c = await raw();
    for (let i = 0; i < 1_100; i++) {
      c.request(2 * i + 1, '/t.T/Len');
      c.send(3, 0, 2 * i + 1, Buffer.from([0, 0, 0, H2Error.CANCEL]));
    }
    expect(goawayCode(await c.next(goaway, 'GOAWAY'))).to.equal(H2Error.ENHANCE_YOUR_CALM);
    few.request(201, '/t.T/Len');
    few.message(201, Buffer.alloc(1), { endStream: true });
    await few.next((f) => f.type === 1 && f.id === 201 && (f.flags & 1) === 1, 'the polite client still served');
    expect(few.frames.some(goaway)).to.equal(false);
  });

  it('confines a handler that throws to its connection: GOAWAY INTERNAL_ERROR, logged and counted, the process goes on', async () => {
    await start();
    const other = await raw();
    const c = await raw();
    c.request(1, '/t.T/Throw');
    c.message(1, Buffer.alloc(1));
    expect(goawayCode(await c.next(goaway, 'GOAWAY'))).to.equal(H2Error.INTERNAL_ERROR);
    expect(await metrics.value('inferplane_connections_closed_total', { reason: 'internal-error' })).to.equal(1);
    other.request(1, '/t.T/Len');
    other.message(1, Buffer.alloc(2), { endStream: true });
    await other.next((f) => f.type === 1 && (f.flags & 1) === 1, 'the other connection served');
  });

  it('refuses streams over SETTINGS_MAX_CONCURRENT_STREAMS with REFUSED_STREAM', async () => {
    await start({ maxConcurrentStreams: 2 });
    const c = await raw();
    for (const id of [1, 3, 5]) c.request(id, '/t.T/Len');
    const rst = await c.next((f) => f.type === 3, 'RST_STREAM');
    expect([rst.id, rst.payload.readUInt32BE(0)]).to.deep.equal([5, H2Error.REFUSED_STREAM]);
    const settings = c.frames.find((f) => f.type === 4 && f.flags === 0)!;
    expect(settings.payload.readUInt16BE(0)).to.equal(3);
    expect(settings.payload.readUInt32BE(2)).to.equal(2);
  });

  it('pings a quiet connection, closes it when the PING goes unanswered, and keeps one that answers', async () => {
    await start({ keepaliveTimeMs: 100, keepaliveTimeoutMs: 200 });
    const silent = await raw();
    const answering = await raw();
    let answered = 0;
    answering.socket.on('data', () => {
      for (const f of answering.frames.filter((f) => f.type === 6 && f.flags === 0).slice(answered)) {
        answering.send(6, 1, 0, f.payload);
        answered++;
      }
    });
    await silent.next((f) => f.type === 6 && f.flags === 0, 'a PING');
    await eventually(() => silent.closed, 'the silent connection closed');
    expect(await metrics.value('inferplane_connections_closed_total', { reason: 'keepalive-timeout' })).to.equal(1);
    await eventually(() => answered >= 4, 'four PINGs answered');
    expect(answering.closed).to.equal(false);
  });

  it('on shutdown sends GOAWAY, refuses new streams, and closes each connection once its calls end', async () => {
    await start();
    const c = await raw();
    c.request(1, '/t.T/Len');
    c.message(1, Buffer.alloc(1));
    await c.next((f) => f.type === 0 && f.id === 1, 'the answer');
    const done = server.shutdown(5_000);
    const f = await c.next(goaway, 'GOAWAY');
    expect([f.payload.readUInt32BE(0), goawayCode(f)]).to.deep.equal([1, H2Error.NO_ERROR]);
    c.request(3, '/t.T/Len');
    await c.next((x) => x.type === 3 && x.id === 3, 'stream 3 refused');
    expect(c.closed).to.equal(false);
    c.message(1, Buffer.alloc(0), { endStream: true });
    await done;
    await eventually(() => c.closed, 'closed once its call ended');
    await start();
  });
});
