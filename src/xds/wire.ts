/**
 * Hand-written protobuf framing of the discovery responses. Each resource is encoded once per version into
 * the exact bytes of its `resources` entry; a response to any stream is then a few small header fields plus
 * those shared bytes, so fan-out to thousands of streams never re-serializes a resource. Protobuf permits
 * fields in any order, and repeated message fields are simply repeated tag+length+bytes.
 *
 * Field numbers, from envoy/service/discovery/v3/discovery.proto:
 *   DiscoveryResponse:      version_info=1, resources=2 (Any), type_url=4, nonce=5, control_plane=6
 *   DeltaDiscoveryResponse: system_version_info=1, resources=2 (Resource), type_url=4, nonce=5,
 *                           removed_resources=6, control_plane=7
 *   Resource:               version=1, resource=2 (Any), name=3
 *   Any:                    type_url=1, value=2
 *   ControlPlane:           identifier=1
 */

const LEN = 2; // wire type of length-delimited fields

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function writeVarint(buf: Buffer, offset: number, n: number): number {
  while (n >= 0x80) {
    buf[offset++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[offset++] = n;
  return offset;
}

/** Size of a length-delimited field of `size` payload bytes (field numbers below 16 have 1-byte tags). */
function fieldSize(size: number): number {
  return 1 + varintLength(size) + size;
}

/** Builds one message from length-delimited fields; strings are UTF-8. */
function message(fields: readonly (readonly [number, Uint8Array | string])[]): Buffer {
  const payloads = fields.map(([no, v]) => [no, typeof v === 'string' ? Buffer.from(v, 'utf8') : v] as const);
  let size = 0;
  for (const [, p] of payloads) size += fieldSize(p.length);
  const buf = Buffer.allocUnsafe(size);
  let o = 0;
  for (const [no, p] of payloads) {
    buf[o++] = (no << 3) | LEN;
    o = writeVarint(buf, o, p.length);
    buf.set(p, o);
    o += p.length;
  }
  return buf;
}

/** The `resources` entry of a DiscoveryResponse (field 2, an Any) for one encoded resource. */
export function sotwEntry(typeUrl: string, value: Uint8Array): Buffer {
  return message([[2, message([[1, typeUrl], [2, value]])]]);
}

/** The `resources` entry of a DeltaDiscoveryResponse (field 2, a Resource) for one encoded resource. */
export function deltaEntry(name: string, version: string, typeUrl: string, value: Uint8Array): Buffer {
  return message([[2, message([[3, name], [1, version], [2, message([[1, typeUrl], [2, value]])]])]]);
}

/** The fields of a SotW response that streams share; `body` is the concatenation of {@link sotwEntry} outputs. */
export interface SotwFrame {
  readonly versionInfo: string;
  readonly typeUrl: string;
  readonly controlPlane: string;
  readonly body: readonly Uint8Array[];
  readonly nonce: string;
}

/** Serializes a DiscoveryResponse; the nonce is its last field (see {@link withNonce}). */
export function encodeSotwResponse(f: SotwFrame): Buffer {
  const head = message([[1, f.versionInfo], [4, f.typeUrl], [6, message([[1, f.controlPlane]])]]);
  return Buffer.concat([head, ...f.body, message([[5, f.nonce]])]);
}

/** The fields of a Delta response that streams share; `body` is the concatenation of {@link deltaEntry} outputs. */
export interface DeltaFrame {
  readonly systemVersionInfo: string;
  readonly typeUrl: string;
  readonly controlPlane: string;
  readonly body: readonly Uint8Array[];
  readonly removed: readonly string[];
  readonly nonce: string;
}

/** Serializes a DeltaDiscoveryResponse; the nonce is its last field (see {@link withNonce}). */
export function encodeDeltaResponse(f: DeltaFrame): Buffer {
  const head = message([
    [1, f.systemVersionInfo],
    [4, f.typeUrl],
    [7, message([[1, f.controlPlane]])],
    ...f.removed.map((r) => [6, r] as const),
  ]);
  return Buffer.concat([head, ...f.body, message([[5, f.nonce]])]);
}

/**
 * A copy of a response made by {@link encodeSotwResponse} or {@link encodeDeltaResponse} whose nonce (field 5 in
 * both messages, written last) is `nonce` instead of `old`.
 */
export function withNonce(response: Buffer, old: string, nonce: string): Buffer {
  return Buffer.concat([response.subarray(0, response.length - fieldSize(Buffer.byteLength(old))), message([[5, nonce]])]);
}

/** A protobuf message that cannot be read: what is wrong, and where. */
export class WireError extends Error {}

// Where the varint read last ended: readVarint returns the value and leaves its end here, so walking a message
// of thousands of fields allocates nothing.
let varintEnd = 0;

function readVarint(buf: Uint8Array, at: number, end: number): number {
  let n = 0;
  let scale = 1;
  for (let i = at; i < end && i < at + 10; i++) {
    const b = buf[i]!;
    n += (b & 0x7f) * scale;
    if (b < 0x80) {
      varintEnd = i + 1;
      return n;
    }
    scale *= 128;
  }
  throw new WireError(`truncated varint at byte ${at}`);
}

/**
 * Walks the fields of the message in `buf[from, to)` without decoding them: `fn(field, start, end, tagAt)` for
 * every length-delimited field (its bytes are `buf[start, end)`); varint and fixed fields are skipped. `fn` may
 * return where to go on from (an offset past `end`, within `to`), to skip fields it recognised by their bytes.
 * Throws {@link WireError} on truncation and on group wire types (never used by proto3). For hand-written
 * decoders that read only what they need.
 */
export function forEachLengthDelimited(buf: Uint8Array, from: number, to: number, fn: (field: number, start: number, end: number, tagAt: number) => number | void): void {
  let i = from;
  while (i < to) {
    const tagAt = i;
    const tag = readVarint(buf, i, to);
    const afterTag = varintEnd;
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === 0) {
      readVarint(buf, afterTag, to);
      i = varintEnd;
    } else if (wire === 1 || wire === 5) {
      i = afterTag + (wire === 1 ? 8 : 4);
      if (i > to) throw new WireError(`truncated field ${field}`);
    } else if (wire === LEN) {
      const len = readVarint(buf, afterTag, to);
      const start = varintEnd;
      const end = start + len;
      if (end > to) throw new WireError(`field ${field} runs past the end (length ${len})`);
      const next = fn(field, start, end, tagAt);
      i = typeof next === 'number' && next > end && next <= to ? next : end;
    } else throw new WireError(`unsupported wire type ${wire} for field ${field}`);
  }
}
