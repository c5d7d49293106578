import http2 from 'node:http2';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { gzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { encodeHeaders, HpackDecoder } from '../../src/grpc/hpack.js';
import { Connection, H2Error, H2_LIMITS } from '../../src/grpc/http2.js';
import { createGrpcServer, type GrpcMethod, type GrpcServer } from '../../src/grpc/server.js';
import { createMemoryLogger } from '../../src/observability/log.js';
import { createMetrics, type Metrics } from '../../src/observability/metrics.js';
import { eventually } from '../support/harness.js';
import { RawClient, type RawFrame } from '../support/h2-raw.js';

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
      // Writes 2,000 answers at once to its first message, whatever `write` returns: a handler that ignores backpressure.
      path: '/t.T/Spam',
      maxMessageBytes: 1024,
      start: (call) => ({
        message: () => {
          for (let i = 0; i < 2_000; i++) call.write(Buffer.alloc(10));
        },
        oversized: () => undefined,
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
    await c.ended(3, 'the status');
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
    await few.ended(201, 'the polite client still served');
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

  const rst = (id: number) => (f: RawFrame) => f.type === 3 && f.id === id;
  const rstCode = (f: RawFrame) => f.payload.readUInt32BE(0);
  /** A request's header block: the given fields encoded as they are, so tests can break every rule. */
  const block = (fields: [string, string][]) => encodeHeaders(fields);
  const GOOD: [string, string][] = [[':method', 'POST'], [':scheme', 'http'], [':path', '/t.T/Len'], [':authority', 'x'], ['content-type', 'application/grpc']];

  describe('bounds: each per-connection resource has a counted limit', () => {
    it('cuts an empty-CONTINUATION flood with GOAWAY after the frame limit, in a few hundred bytes (CVE-2024-27316)', async () => {
      await start();
      const c = await raw();
      c.send(1, 0, 1, block(GOOD.slice(0, 2)));
      // 10,000 empty CONTINUATIONs in one write: they add no bytes to the block, only frames.
      const empty = Buffer.from([0, 0, 0, 9, 0, 0, 0, 0, 1]);
      c.socket.write(Buffer.concat(Array.from({ length: 10_000 }, () => empty)));
      const f = await c.next(goaway, 'GOAWAY');
      expect(goawayCode(f)).to.equal(H2Error.ENHANCE_YOUR_CALM);
      expect(f.payload.subarray(8).toString()).to.include(`more than ${H2_LIMITS.continuationFrames} CONTINUATION frames`);
      await eventually(() => c.closed, 'closed');
      expect(await metrics.value('inferplane_connections_closed_total', { reason: 'protocol-error' })).to.equal(1);
    });

    it('cuts a header block whose CONTINUATIONs carry more bytes than a header list may take', async () => {
      await start();
      const c = await raw();
      c.send(1, 0, 1, block(GOOD.slice(0, 2)));
      for (let i = 0; i < 4; i++) c.send(9, 0, 1, Buffer.alloc(16_000, 0x40));
      expect(goawayCode(await c.next(goaway, 'GOAWAY'))).to.equal(H2Error.ENHANCE_YOUR_CALM);
    });

    it('answers a header list over SETTINGS_MAX_HEADER_LIST_SIZE with RESOURCE_EXHAUSTED, keeping the HPACK table in step', async () => {
      await start({ maxHeaderListBytes: 1_024 });
      const c = await raw();
      c.send(1, 0x5, 1, block([...GOOD, ['x-big', 'v'.repeat(2_000)]]));
      await c.next((f) => f.type === 1 && f.id === 1, 'the status');
      expect(c.headers(1)[0]).to.include({ 'grpc-status': String(grpc.status.RESOURCE_EXHAUSTED) });
      c.request(3, '/t.T/Len');
      c.message(3, Buffer.alloc(1), { endStream: true });
      await c.ended(3, 'the next call served');
    });

    it('refuses a dynamic table size update above the advertised 4,096 bytes (COMPRESSION_ERROR)', async () => {
      await start();
      const c = await raw();
      // 001xxxxx with 5-bit prefix: 4,097 = 31 + 4,066 (0xe2 0x1f).
      c.send(1, 0x5, 1, Buffer.concat([Buffer.from([0x3f, 0xe2, 0x1f]), block(GOOD)]));
      expect(goawayCode(await c.next(goaway, 'GOAWAY'))).to.equal(H2Error.COMPRESSION_ERROR);
    });

    it('holds at most bufferedRequestBytes of unfinished request messages per connection, and allocates only what arrives', async () => {
      await start();
      const c = await raw();
      const mib = 1 << 20;
      const claimed = Math.ceil(H2_LIMITS.bufferedRequestBytes / (mib - 5)) + 1;
      // Each stream claims a 1 MiB message (the method's limit) and sends all of it but its last byte.
      for (let s = 0; s < claimed; s++) {
        const id = 2 * s + 1;
        c.request(id, '/t.T/Len');
        const head = Buffer.alloc(5);
        head.writeUInt32BE(mib, 1);
        c.send(0, 0, id, head);
        for (let sent = 0; sent < mib - 1; sent += 16_384) c.send(0, 0, id, Buffer.alloc(Math.min(16_384, mib - 1 - sent)));
        if (c.frames.some(goaway)) break;
      }
      const f = await c.next(goaway, 'GOAWAY');
      expect(goawayCode(f)).to.equal(H2Error.ENHANCE_YOUR_CALM);
      expect(f.payload.subarray(8).toString()).to.include('unfinished request messages');
    });

    it('ends a call whose handler queues more than queuedMessagesPerCall answers behind flow control (RESOURCE_EXHAUSTED)', async () => {
      await start();
      // A stream window of 0: nothing can go out.
      const c = await raw([[4, 0]]);
      c.request(1, '/t.T/Spam');
      c.message(1, Buffer.alloc(1));
      await c.ended(1, 'the status');
      expect(c.headers(1).at(-1)).to.include({ 'grpc-status': String(grpc.status.RESOURCE_EXHAUSTED) });
      expect(c.frames.some((f) => f.type === 0 && f.id === 1)).to.equal(false);
    });

    it('cuts off a client that provokes RST_STREAM replies without reading them (owedControlFrames)', async () => {
      await start();
      const c = await raw();
      c.request(1, '/t.T/Len');
      c.send(3, 0, 1, Buffer.from([0, 0, 0, H2Error.CANCEL]));
      c.socket.pause();
      // Each empty DATA on the stream it reset earns a RST_STREAM (STREAM_CLOSED): 600,000 of them is 7.8 MB of replies.
      const data = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 1]);
      c.socket.write(Buffer.concat(Array.from({ length: 600_000 }, () => data)));
      await eventually(async () => (await metrics.value('inferplane_connections_closed_total', { reason: 'protocol-error' })) === 1, 'the connection cut off', 15_000);
    });

    it('handles at most framesPerTurn frames of one connection per turn of the event loop', async () => {
      // A stand-in socket, so that what one turn handled can be counted exactly; real sockets are everywhere else.
      const written: Buffer[] = [];
      const socket = new Duplex({ read() {}, write(chunk: Buffer, _e, cb) { written.push(chunk); cb(); } });
      Object.assign(socket, { remoteAddress: '127.0.0.1', remotePort: 1 });
      const host = { maxConcurrentStreams: 10, maxHeaderListBytes: 16_384, open: () => undefined, settled: () => undefined, closed: () => undefined };
      new Connection(socket as unknown as net.Socket, host, () => 0);
      await new Promise((r) => setImmediate(r));
      const ping = Buffer.from([0, 0, 8, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
      const pings = 5 * H2_LIMITS.framesPerTurn;
      const acks = () => Buffer.concat(written).toString('hex').split('000008060100000000').length - 1;
      socket.push(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]), ...Array.from({ length: pings }, () => ping)]));
      // Frames are corked until the end of the tick: let it pass, but no turn of the loop.
      await new Promise((r) => process.nextTick(r));
      expect(acks(), 'answered in the first turn (the SETTINGS took one frame)').to.equal(H2_LIMITS.framesPerTurn - 1);
      await eventually(() => acks() === pings, 'every PING answered, turn by turn');
      socket.destroy();
    });
  });

  describe('malformed requests (RFC 9113 §8.2, §8.3) are stream errors: RST_STREAM PROTOCOL_ERROR, nothing served', () => {
    const without = (name: string) => GOOD.filter(([n]) => n !== name);
    const cases: [string, [string, string][]][] = [
      ['an uppercase field name', [...GOOD, ['X-Upper', '1']]],
      ['an unknown pseudo-header', [...GOOD, [':foo', '1']]],
      ['a response pseudo-header (:status)', [[':status', '200'], ...GOOD]],
      ['a pseudo-header after a regular field', [...without(':authority'), [':authority', 'x']]],
      ['connection: keep-alive', [...GOOD, ['connection', 'keep-alive']]],
      ['transfer-encoding', [...GOOD, ['transfer-encoding', 'chunked']]],
      ['te other than trailers', [...GOOD, ['te', 'gzip']]],
      ['a duplicated :method', [...GOOD.slice(0, 1), ...GOOD]],
      ['a duplicated :scheme', [GOOD[1]!, ...GOOD]],
      ['a duplicated :path', [[':path', '/t.T/Big'], ...GOOD]],
      ['no :path', without(':path')],
      ['an empty :path', [...without(':path').slice(0, 2), [':path', ''], ...without(':path').slice(2)]],
      ['a :path that does not start with /', [...without(':path').slice(0, 2), [':path', 't.T/Len'], ...without(':path').slice(2)]],
      ['a :method that is not a token', [[':method', 'P\xd3ST'], ...without(':method')]],
      ['a :path with a space', [...without(':path').slice(0, 2), [':path', '/t.T/Len x'], ...without(':path').slice(2)]],
      ['no :scheme', without(':scheme')],
      ['no :method', without(':method')],
      ['a value with CR LF', [...GOOD, ['x-v', 'a\r\nb']]],
      ['a value with a leading space', [...GOOD, ['x-v', ' a']]],
      ['content-length that is not a number', [...GOOD, ['content-length', '-1']]],
    ];
    for (const [what, fields] of cases) {
      it(`refuses ${what}`, async () => {
        await start();
        const c = await raw();
        c.send(1, 0x4, 1, block(fields));
        c.message(1, Buffer.alloc(1), { endStream: true });
        expect(rstCode(await c.next(rst(1), 'RST_STREAM'))).to.equal(H2Error.PROTOCOL_ERROR);
        // Served means an answer on the stream; the connection goes on.
        expect(c.frames.some((f) => f.type === 1 && f.id === 1)).to.equal(false);
        c.request(3, '/t.T/Len');
        c.message(3, Buffer.alloc(1), { endStream: true });
        await c.ended(3, 'the next call served');
        expect(c.frames.some(goaway)).to.equal(false);
      });
    }

    it('refuses trailers with a pseudo-header, and a request whose DATA does not add up to its content-length', async () => {
      await start();
      const c = await raw();
      c.request(1, '/t.T/Len');
      c.message(1, Buffer.alloc(1));
      c.send(1, 0x5, 1, block([[':path', '/x']]));
      expect(rstCode(await c.next(rst(1), 'RST_STREAM on the trailers'))).to.equal(H2Error.PROTOCOL_ERROR);
      // content-length 10, 6 bytes sent (a 1-byte message), then END_STREAM.
      c.request(3, '/t.T/Len', [['content-length', '10']]);
      c.message(3, Buffer.alloc(1), { endStream: true });
      expect(rstCode(await c.next(rst(3), 'RST_STREAM on a short body'))).to.equal(H2Error.PROTOCOL_ERROR);
      // content-length 3, 6 bytes sent.
      c.request(5, '/t.T/Len', [['content-length', '3']]);
      c.message(5, Buffer.alloc(1));
      expect(rstCode(await c.next(rst(5), 'RST_STREAM on a long body'))).to.equal(H2Error.PROTOCOL_ERROR);
      // A matching content-length is served.
      c.request(7, '/t.T/Len', [['content-length', '6']]);
      c.message(7, Buffer.alloc(1), { endStream: true });
      await c.ended(7, 'a matching body served');
    });

    it('answers a request that is not gRPC once it has ended, with 405 or 415 and a body saying what the port serves', async () => {
      await start();
      const c = await raw();
      c.send(1, 0x4, 1, block([[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'x']]));
      await new Promise((r) => setTimeout(r, 50));
      expect(c.frames.some((f) => f.id === 1), 'nothing before the request ends').to.equal(false);
      c.send(0, 1, 1, Buffer.from('ignored'));
      await c.next((f) => f.type === 0 && f.id === 1 && (f.flags & 1) === 1, 'the end of the body');
      expect(c.headers(1)[0]).to.include({ ':status': '405', allow: 'POST' });
      expect(c.data(1).toString()).to.include('serves gRPC on this port');
      expect(c.frames.some(rst(1)), 'no reset of a stream that ended').to.equal(false);
    });
  });

  describe('stream states (RFC 9113 §5.1, §5.1.1, §5.3.1)', () => {
    it('closes the connection on HEADERS for a stream the client closed (STREAM_CLOSED) or a lower id never used (PROTOCOL_ERROR)', async () => {
      await start();
      const closedStream = await raw();
      closedStream.request(1, '/t.T/Len', [], true);
      await closedStream.ended(1, 'the answer');
      closedStream.request(1, '/t.T/Len', [], true);
      expect(goawayCode(await closedStream.next(goaway, 'GOAWAY'))).to.equal(H2Error.STREAM_CLOSED);

      const lower = await raw();
      lower.request(5, '/t.T/Len');
      lower.request(3, '/t.T/Len');
      expect(goawayCode(await lower.next(goaway, 'GOAWAY'))).to.equal(H2Error.PROTOCOL_ERROR);
    });

    it('answers DATA on a stream the client reset or half-closed with RST_STREAM STREAM_CLOSED, and after the stream ended with GOAWAY STREAM_CLOSED', async () => {
      await start();
      // A stream window of 0 keeps the answer to the GET below from going out: the stream stays half-closed (remote).
      const c = await raw([[4, 0]]);
      c.request(1, '/t.T/Len');
      c.send(3, 0, 1, Buffer.from([0, 0, 0, H2Error.CANCEL]));
      c.message(1, Buffer.alloc(1));
      expect(rstCode(await c.next(rst(1), 'RST_STREAM after the client reset'))).to.equal(H2Error.STREAM_CLOSED);
      c.send(1, 0x5, 3, block([[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'x']]));
      c.message(3, Buffer.alloc(1));
      expect(rstCode(await c.next(rst(3), 'RST_STREAM on a half-closed stream'))).to.equal(H2Error.STREAM_CLOSED);
      expect(c.frames.some(goaway)).to.equal(false);

      const ended = await raw();
      ended.request(1, '/t.T/Len', [], true);
      await ended.ended(1, 'the answer');
      ended.message(1, Buffer.alloc(1));
      expect(goawayCode(await ended.next(goaway, 'GOAWAY after the stream ended'))).to.equal(H2Error.STREAM_CLOSED);
    });

    it('drops what a client sent before it heard our reset, without a reply', async () => {
      await start();
      const c = await raw();
      // Oversized: answered RESOURCE_EXHAUSTED and reset (NO_ERROR) while the client still sends.
      c.request(1, '/t.T/Big');
      c.message(1, Buffer.alloc(2_000));
      await c.next(rst(1), 'our reset');
      c.message(1, Buffer.alloc(1));
      c.send(1, 0x5, 1, block([['x-trailer', '1']]));
      c.request(3, '/t.T/Len', [], true);
      await c.next((f) => f.type === 1 && f.id === 3, 'the next call served');
      expect(c.frames.filter(rst(1)).map(rstCode)).to.deep.equal([H2Error.NO_ERROR]);
      expect(c.frames.some(goaway)).to.equal(false);
    });

    it('refuses a stream that depends on itself, in HEADERS or PRIORITY (PROTOCOL_ERROR)', async () => {
      await start();
      const c = await raw();
      const prio = Buffer.from([0, 0, 0, 1, 16]);
      c.send(1, 0x25, 1, Buffer.concat([prio, block(GOOD)]));
      expect(rstCode(await c.next(rst(1), 'RST_STREAM on HEADERS'))).to.equal(H2Error.PROTOCOL_ERROR);
      c.send(2, 0, 3, Buffer.from([0, 0, 0, 3, 16]));
      expect(rstCode(await c.next(rst(3), 'RST_STREAM on PRIORITY'))).to.equal(H2Error.PROTOCOL_ERROR);
    });

    it('sends no RST_STREAM after a trailers-only answer to a request that had already ended', async () => {
      await start();
      const c = await raw();
      c.request(1, '/no.Such/Method', [], true);
      await c.ended(1, 'the answer');
      c.request(3, '/t.T/Len', [], true);
      await c.ended(3, 'the next answer');
      expect(c.frames.some(rst(1))).to.equal(false);
    });
  });

  describe('rapid reset (CVE-2023-44487), counted precisely', () => {
    it('keeps a client that cancels calls it was answered on, however many', async () => {
      await start();
      const c = await raw();
      // 1,200 calls in batches of 100: each answered, then cancelled (how clients end long streams).
      for (let batch = 0; batch < 12; batch++) {
        const ids = Array.from({ length: 100 }, (_, i) => 2 * (batch * 100 + i) + 1);
        for (const id of ids) {
          c.request(id, '/t.T/Len');
          c.message(id, Buffer.alloc(1));
        }
        await eventually(() => ids.every((id) => c.frames.some((f) => f.type === 0 && f.id === id)), `batch ${batch} answered`);
        for (const id of ids) c.send(3, 0, id, Buffer.from([0, 0, 0, H2Error.CANCEL]));
      }
      c.request(2_401, '/t.T/Len', [], true);
      await c.ended(2_401, 'still served');
      expect(c.frames.some(goaway)).to.equal(false);
    });

    it('cuts a client resetting unanswered calls past the burst with GOAWAY and the last stream id; calls already accepted finish', async () => {
      let t = 0;
      await start({ now: () => t });
      const c = await raw();
      // An accepted call, answered once, left open.
      c.request(1, '/t.T/Len');
      c.message(1, Buffer.alloc(1));
      await c.next((f) => f.type === 0 && f.id === 1, 'the first answer');
      let id = 3;
      const resetBurst = (n: number) => {
        for (let i = 0; i < n; i++, id += 2) {
          c.request(id, '/t.T/Len');
          c.send(3, 0, id, Buffer.from([0, 0, 0, H2Error.CANCEL]));
        }
      };
      resetBurst(H2_LIMITS.unansweredResetBurst);
      // A second later the bucket has refilled by the rate: that many more are allowed.
      c.request(id, '/t.T/Len', [], true);
      await c.ended(id, 'served after the burst');
      id += 2;
      t += 1_000;
      resetBurst(H2_LIMITS.resetRatePerSecond);
      c.request(id, '/t.T/Len', [], true);
      await c.ended(id, 'served after the refill');
      id += 2;
      expect(c.frames.some(goaway)).to.equal(false);
      resetBurst(1);
      const f = await c.next(goaway, 'GOAWAY');
      expect(goawayCode(f)).to.equal(H2Error.ENHANCE_YOUR_CALM);
      expect(f.payload.readUInt32BE(0)).to.equal(id - 2);
      // The call accepted before goes on to its end; new ones are refused.
      c.message(1, Buffer.alloc(2), { endStream: true });
      await c.ended(1, 'the accepted call finished');
      expect(c.data(1).readUInt32BE(14)).to.equal(2);
      await eventually(() => c.closed, 'closed once its calls ended');
      expect(await metrics.value('inferplane_connections_closed_total', { reason: 'protocol-error' })).to.equal(1);
    });
  });
});
