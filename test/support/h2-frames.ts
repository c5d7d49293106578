import { encodeHeaders, type HeaderField } from '../../src/grpc/hpack.js';
import { createRandom } from '../../src/simulate/random.js';
import { RawClient, type RawFrame } from './h2-raw.js';

/**
 * A structure-aware generator of HTTP/2 frame sequences for fuzzing a server: frames of every type with the
 * flags, lengths and stream ids that matter (padding, priority, END_STREAM/END_HEADERS, ids idle, open, closed
 * or even), header blocks that are valid requests, malformed ones or mutated HPACK, gRPC messages and random
 * DATA, SETTINGS with legal and illegal values. A sequence is sent after the client preface and an empty
 * SETTINGS; its bytes are what a regression file holds.
 */

/** The method both servers of the differential check serve: it echoes each message and ends OK on half-close. */
export const ECHO_PATH = '/t.T/Echo';

export function frameBytes(type: number, flags: number, id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(id >>> 0, 5);
  return Buffer.concat([h, payload]);
}

const GOOD: HeaderField[] = [[':method', 'POST'], [':scheme', 'http'], [':path', ECHO_PATH], [':authority', 'x'], ['content-type', 'application/grpc'], ['te', 'trailers']];

/** Header lists: a good request, and each way a request can be malformed or not gRPC. */
const HEADER_LISTS: (() => HeaderField[])[] = [
  () => GOOD,
  () => GOOD,
  () => GOOD,
  () => [...GOOD, ['x-extra', 'v']],
  () => [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'x']],
  () => GOOD.map(([n, v]): HeaderField => (n === 'content-type' ? [n, 'text/plain'] : [n, v])),
  () => [...GOOD, ['X-Upper', '1']],
  () => [...GOOD, [':unknown', '1']],
  () => [[':status', '200'], ...GOOD],
  () => [...GOOD.slice(1), GOOD[0]!],
  () => [...GOOD, ['connection', 'close']],
  () => [...GOOD, ['te', 'gzip']],
  () => [GOOD[0]!, ...GOOD],
  () => GOOD.filter(([n]) => n !== ':path'),
  () => GOOD.filter(([n]) => n !== ':scheme'),
  () => [...GOOD, ['content-length', '5']],
  () => [...GOOD, ['content-length', '0']],
  () => [...GOOD, ['x-v', 'a\nb']],
  () => [['grpc-status', '0']],
  () => [],
];

const STREAM_IDS = [1, 1, 1, 3, 3, 5, 7, 0, 2, 9, 0x7fffffff];

/** One random frame's bytes, chosen by `r`. */
function randomFrame(r: () => number): Buffer {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const id = pick(STREAM_IDS);
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)));
  const pad = (payload: Buffer, flags: number): [Buffer, number] => {
    if (r() > 0.15) return [payload, flags];
    const n = Math.floor(r() * 8);
    // Now and then a pad length longer than the frame.
    const declared = r() < 0.2 ? payload.length + n + 1 : n;
    return [Buffer.concat([Buffer.from([declared & 0xff]), payload, Buffer.alloc(n)]), flags | 0x8];
  };
  const kind = r();
  if (kind < 0.3) {
    let block = encodeHeaders(pick(HEADER_LISTS)());
    if (r() < 0.1) {
      block = Buffer.from(block);
      const at = Math.floor(r() * block.length);
      block[at] = block[at]! ^ (1 << Math.floor(r() * 8));
    }
    let flags = (r() < 0.85 ? 0x4 : 0) | (r() < 0.4 ? 0x1 : 0);
    if (r() < 0.1) {
      const dep = Buffer.alloc(5);
      dep.writeUInt32BE(r() < 0.3 ? id : 0);
      dep[4] = 16;
      block = Buffer.concat([dep, block]);
      flags |= 0x20;
    }
    const [payload, f] = pad(block, flags);
    return frameBytes(1, f, id, payload);
  }
  if (kind < 0.35) return frameBytes(9, r() < 0.7 ? 0x4 : 0, id, r() < 0.5 ? Buffer.alloc(0) : encodeHeaders([['x-c', 'v']]));
  if (kind < 0.6) {
    let payload: Buffer;
    if (r() < 0.6) {
      const body = bytes(Math.floor(r() * 20));
      payload = Buffer.concat([Buffer.from([r() < 0.05 ? 1 : 0, 0, 0, 0, body.length]), body]);
      if (r() < 0.1) payload = payload.subarray(0, Math.floor(r() * payload.length));
    } else {
      payload = bytes(Math.floor(r() * 12));
    }
    const [p, f] = pad(payload, r() < 0.4 ? 0x1 : 0);
    return frameBytes(0, f, id, p);
  }
  if (kind < 0.68) return frameBytes(3, 0, id, r() < 0.9 ? Buffer.from([0, 0, 0, pick([0, 1, 2, 5, 7, 8, 11, 99])]) : bytes(3));
  if (kind < 0.76) {
    if (r() < 0.2) return frameBytes(4, 0x1, r() < 0.8 ? 0 : id, r() < 0.7 ? Buffer.alloc(0) : bytes(6));
    const settings = Array.from({ length: 1 + Math.floor(r() * 3) }, () => {
      const s = Buffer.alloc(6);
      const key = pick([1, 2, 3, 4, 5, 6, 0x99]);
      s.writeUInt16BE(key);
      s.writeUInt32BE(pick([0, 1, 2, 100, 16_384, 16_383, 65_535, 2 ** 31 - 1, 2 ** 31, 16_777_216]));
      return s;
    });
    const payload = Buffer.concat(settings);
    return frameBytes(4, 0, r() < 0.9 ? 0 : id, r() < 0.1 ? payload.subarray(0, payload.length - 1) : payload);
  }
  if (kind < 0.82) return frameBytes(6, r() < 0.2 ? 0x1 : 0, r() < 0.9 ? 0 : id, r() < 0.9 ? bytes(8) : bytes(Math.floor(r() * 10)));
  if (kind < 0.9) {
    const inc = Buffer.alloc(4);
    inc.writeUInt32BE(pick([0, 1, 1_000, 65_535, 2 ** 31 - 1]));
    return frameBytes(8, 0, pick([0, id]), r() < 0.95 ? inc : bytes(3));
  }
  if (kind < 0.94) {
    const p = Buffer.alloc(5);
    p.writeUInt32BE(r() < 0.2 ? id : pick([0, 1, 3]));
    p[4] = 16;
    return frameBytes(2, 0, id, r() < 0.9 ? p : bytes(4));
  }
  if (kind < 0.96) return frameBytes(7, 0, r() < 0.9 ? 0 : id, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]));
  if (kind < 0.98) return frameBytes(5, 0x4, id, Buffer.concat([Buffer.from([0, 0, 0, 2]), encodeHeaders(GOOD)]));
  return frameBytes(0x20 + Math.floor(r() * 200), Math.floor(r() * 256), id, bytes(Math.floor(r() * 8)));
}

/** A generator of sequences for one seed: the same seed gives the same sequences. */
export function sequences(seed: number): () => Buffer {
  const random = createRandom(seed);
  const r = () => random.next();
  return () => randomSequence(r);
}

/** A sequence of 1–10 frames, as the bytes to send after the preface and SETTINGS. */
function randomSequence(r: () => number): Buffer {
  return Buffer.concat(Array.from({ length: 1 + Math.floor(r() * 10) }, () => randomFrame(r)));
}

/** What a server did with one sequence: per stream id the client used, and for the connection. */
export interface Outcome {
  /** `open`, `goaway <code>` or `closed` (without GOAWAY). */
  readonly connection: string;
  /** Per stream id: `served` (the server answered on it with HEADERS), `rst <code>`, or `none`. */
  readonly streams: Readonly<Record<number, string>>;
}

/** The stream ids of a sequence's frames, in order of first use (0 left out). */
export function streamIds(sequence: Buffer): number[] {
  const ids: number[] = [];
  for (let p = 0; p + 9 <= sequence.length; p += 9 + sequence.readUIntBE(p, 3)) {
    const id = sequence.readUInt32BE(p + 5) & 0x7fffffff;
    if (id !== 0 && !ids.includes(id)) ids.push(id);
  }
  return ids;
}

/**
 * Sends `sequence` on a new connection to `port` (preface and SETTINGS first, windows opened wide), then a PING,
 * and waits until the PING is answered twice over (everything before it handled), a GOAWAY comes or the
 * connection closes.
 */
export async function run(port: number, sequence: Buffer): Promise<Outcome> {
  const c = await RawClient.open(port);
  try {
    c.socket.write(sequence);
    const settle = async (token: number) => {
      const payload = Buffer.alloc(8);
      payload.writeUInt32BE(token);
      c.send(6, 0, 0, payload);
      const deadline = Date.now() + 2_000;
      // A GOAWAY decides the connection's fate: nothing after it is handled.
      const settled = () => c.closed || c.frames.some((f) => f.type === 7 || (f.type === 6 && f.flags & 1 && f.payload.length === 8 && f.payload.readUInt32BE(0) === token));
      while (!settled() && Date.now() < deadline) {
        await new Promise((res) => setTimeout(res, 2));
      }
    };
    await settle(0xfeed0001);
    // Application callbacks (node:http2's stream events) may answer a turn after the frames were handled.
    await new Promise((res) => setTimeout(res, 15));
    await settle(0xfeed0002);
    return outcome(c.frames, c.closed, streamIds(sequence));
  } finally {
    c.close();
  }
}

function outcome(frames: readonly RawFrame[], closed: boolean, ids: readonly number[]): Outcome {
  const goaway = frames.find((f) => f.type === 7);
  const streams: Record<number, string> = {};
  for (const id of ids) {
    const rst = frames.find((f) => f.type === 3 && f.id === id);
    if (frames.some((f) => f.type === 1 && f.id === id)) streams[id] = 'served';
    else if (rst) streams[id] = `rst ${rst.payload.readUInt32BE(0)}`;
    else streams[id] = 'none';
  }
  return { connection: goaway ? `goaway ${goaway.payload.readUInt32BE(4)}` : closed ? 'closed' : 'open', streams };
}

/** A readable rendering of a sequence: one frame a line. */
export function describeSequence(sequence: Buffer): string {
  const names = ['DATA', 'HEADERS', 'PRIORITY', 'RST_STREAM', 'SETTINGS', 'PUSH_PROMISE', 'PING', 'GOAWAY', 'WINDOW_UPDATE', 'CONTINUATION'];
  const lines: string[] = [];
  for (let p = 0; p + 9 <= sequence.length; ) {
    const len = sequence.readUIntBE(p, 3);
    const type = sequence[p + 3]!;
    lines.push(`${names[type] ?? `type ${type}`} flags 0x${sequence[p + 4]!.toString(16)} stream ${sequence.readUInt32BE(p + 5) & 0x7fffffff} ${sequence.subarray(p + 9, p + 9 + len).toString('hex')}`);
    p += 9 + len;
  }
  return lines.join('\n');
}
