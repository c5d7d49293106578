/**
 * HPACK (RFC 7541) for a gRPC server: a complete decoder (static and dynamic tables, Huffman strings) and an
 * encoder that writes every field as a literal without indexing, so the peer's decoder keeps no state for us and
 * ours needs no table of its own.
 */

/** A header block that breaks RFC 7541: a connection error (COMPRESSION_ERROR) for HTTP/2. */
export class HpackError extends Error {}

/** Appendix A, indexes 1–61: name, value. */
const STATIC: readonly (readonly [string, string])[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''],
  ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''],
  ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''],
  ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];

/**
 * Appendix B, as the code length of each symbol 0–256 (256 is EOS). The code is canonical (codes of one
 * length are consecutive, in symbol order, and each length continues where the shorter left off), so the
 * lengths determine every code.
 */
const HUFFMAN_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];
const EOS = 256;
const MAX_CODE_LENGTH = 30;

/** Canonical decoding tables: per length, its first code, how many codes it has, and where they start in SYMBOLS. */
const FIRST = new Int32Array(MAX_CODE_LENGTH + 1);
const COUNT = new Int32Array(MAX_CODE_LENGTH + 1);
const BASE = new Int32Array(MAX_CODE_LENGTH + 1);
const SYMBOLS = new Uint16Array(HUFFMAN_LENGTHS.length);
{
  const order = HUFFMAN_LENGTHS.map((_, s) => s).sort((a, b) => HUFFMAN_LENGTHS[a]! - HUFFMAN_LENGTHS[b]! || a - b);
  order.forEach((s, i) => (SYMBOLS[i] = s));
  let code = 0;
  let i = 0;
  for (let len = 1; len <= MAX_CODE_LENGTH; len++) {
    FIRST[len] = code;
    BASE[len] = i;
    while (i < order.length && HUFFMAN_LENGTHS[order[i]!] === len) {
      COUNT[len] = COUNT[len]! + 1;
      code++;
      i++;
    }
    code <<= 1;
  }
}

/** Decodes a Huffman-coded string (§5.2): padding must be the most significant bits of EOS, and under 8 bits. */
export function huffmanDecode(buf: Buffer, start: number, end: number): string {
  const out = Buffer.allocUnsafe(Math.ceil(((end - start) * 8) / 5));
  let n = 0;
  let code = 0;
  let len = 0;
  for (let p = start; p < end; p++) {
    const byte = buf[p]!;
    for (let bit = 7; bit >= 0; bit--) {
      code = (code << 1) | ((byte >> bit) & 1);
      len++;
      const k = code - FIRST[len]!;
      if (k >= 0 && k < COUNT[len]!) {
        const sym = SYMBOLS[BASE[len]! + k]!;
        if (sym === EOS) throw new HpackError('a Huffman string contains EOS');
        out[n++] = sym;
        code = 0;
        len = 0;
      } else if (len >= MAX_CODE_LENGTH) {
        throw new HpackError('a Huffman string holds an invalid code');
      }
    }
  }
  if (len > 7 || code !== (1 << len) - 1) throw new HpackError('a Huffman string ends in invalid padding');
  return out.toString('latin1', 0, n);
}

/** One decoded header field; names and values as latin1 strings (byte for byte). */
export type HeaderField = readonly [name: string, value: string];

/** Bytes a field counts against table and list sizes (§4.1). */
const fieldSize = (name: string, value: string) => name.length + value.length + 32;

/**
 * The decoder of one HTTP/2 connection: its dynamic table outlives each header block. `maxTableSize` is the
 * SETTINGS_HEADER_TABLE_SIZE this side advertised.
 */
export class HpackDecoder {
  /** Oldest first, so that inserting is a push. */
  private readonly table: HeaderField[] = [];
  private tableSize = 0;
  private limit: number;

  constructor(private readonly maxTableSize = 4096) {
    this.limit = maxTableSize;
  }

  /**
   * Decodes one complete header block. Throws {@link HpackError} on a malformed block (the connection cannot go
   * on: its table is out of step). `maxListBytes` bounds the decoded list (§4.1 sizes): past it, the rest of the
   * block is still decoded (to keep the table in step) and the result says `tooLarge`.
   */
  decode(block: Buffer, maxListBytes: number): { fields: HeaderField[]; tooLarge: boolean } {
    const fields: HeaderField[] = [];
    let listBytes = 0;
    let p = 0;
    let mayResize = true;
    const int = (prefixBits: number): number => {
      const mask = (1 << prefixBits) - 1;
      let v = block[p++]! & mask;
      if (v < mask) return v;
      let shift = 0;
      for (;;) {
        if (p >= block.length) throw new HpackError('a header block ends inside an integer');
        const b = block[p++]!;
        v += (b & 0x7f) * 2 ** shift;
        shift += 7;
        if ((b & 0x80) === 0) break;
        if (shift > 28) throw new HpackError('an integer in a header block is too large');
      }
      return v;
    };
    const str = (): string => {
      if (p >= block.length) throw new HpackError('a header block ends before a string');
      const huffman = (block[p]! & 0x80) !== 0;
      const len = int(7);
      if (p + len > block.length) throw new HpackError('a string runs past the end of its header block');
      const s = huffman ? huffmanDecode(block, p, p + len) : block.toString('latin1', p, p + len);
      p += len;
      return s;
    };
    const field = (index: number): HeaderField => {
      if (index >= 1 && index <= STATIC.length) return STATIC[index - 1]!;
      const d = index - STATIC.length - 1;
      if (index < 1 || d >= this.table.length) throw new HpackError(`index ${index} is not in the header table`);
      return this.table[this.table.length - 1 - d]!;
    };
    while (p < block.length) {
      const b = block[p]!;
      if (b & 0x80) {
        const f = field(int(7));
        fields.push(f);
        listBytes += fieldSize(f[0], f[1]);
        mayResize = false;
        continue;
      }
      if ((b & 0xe0) === 0x20) {
        // A dynamic table size update may only open a block (§4.2).
        if (!mayResize) throw new HpackError('a dynamic table size update follows a header field');
        const size = int(5);
        if (size > this.maxTableSize) throw new HpackError(`a dynamic table size update to ${size} exceeds the advertised ${this.maxTableSize}`);
        this.limit = size;
        this.evict(0);
        continue;
      }
      mayResize = false;
      const indexing = (b & 0xc0) === 0x40;
      const index = int(indexing ? 6 : 4);
      const name = index === 0 ? str() : field(index)[0];
      const value = str();
      const f: HeaderField = [name, value];
      fields.push(f);
      listBytes += fieldSize(name, value);
      if (indexing) this.insert(f);
    }
    return { fields: listBytes > maxListBytes ? [] : fields, tooLarge: listBytes > maxListBytes };
  }

  private insert(f: HeaderField): void {
    const size = fieldSize(f[0], f[1]);
    this.evict(size);
    // An entry larger than the table empties it and is not added (§4.4).
    if (size > this.limit) return;
    this.table.push(f);
    this.tableSize += size;
  }

  private evict(room: number): void {
    let drop = 0;
    while (drop < this.table.length && this.tableSize + room > this.limit) {
      this.tableSize -= fieldSize(this.table[drop]![0], this.table[drop]![1]);
      drop++;
    }
    if (drop > 0) this.table.splice(0, drop);
  }
}

function writeInt(out: number[], value: number, prefixBits: number, first: number): void {
  const mask = (1 << prefixBits) - 1;
  if (value < mask) {
    out.push(first | value);
    return;
  }
  out.push(first | mask);
  value -= mask;
  while (value >= 0x80) {
    out.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 0x80);
  }
  out.push(value);
}

const STATIC_NAME = new Map<string, number>();
STATIC.forEach(([name], i) => STATIC_NAME.has(name) || STATIC_NAME.set(name, i + 1));

/**
 * Encodes fields as literals without indexing (§6.2.2), names by static index where one exists, strings
 * without Huffman; `:status: 200` as its static entry. Names must be lowercase; values are written as latin1.
 */
export function encodeHeaders(fields: readonly HeaderField[]): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields) {
    if (name === ':status' && value === '200') {
      out.push(0x88);
      continue;
    }
    const index = STATIC_NAME.get(name);
    writeInt(out, index ?? 0, 4, 0x00);
    if (index === undefined) {
      writeInt(out, name.length, 7, 0x00);
      for (let i = 0; i < name.length; i++) out.push(name.charCodeAt(i) & 0xff);
    }
    writeInt(out, value.length, 7, 0x00);
    for (let i = 0; i < value.length; i++) out.push(value.charCodeAt(i) & 0xff);
  }
  return Buffer.from(out);
}
