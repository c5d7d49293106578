import http2 from 'node:http2';
import net from 'node:net';
import { expect } from 'chai';
import { encodeHeaders, HpackDecoder, HpackError, huffmanDecode } from '../../src/grpc/hpack.js';

const hex = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex');

/** Deterministic pseudo-random numbers (xorshift), so a failure reproduces. */
function rng(seed: number) {
  let x = seed;
  return (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

/**
 * Sends `requests` from Node's HTTP/2 client (nghttp2's HPACK encoder: Huffman strings, dynamic-table indexing and
 * eviction) to a raw socket, and returns each HEADERS frame's header block as sent, in order.
 */
async function blocksFromNghttp2(requests: http2.OutgoingHttpHeaders[]): Promise<Buffer[]> {
  const blocks: Buffer[] = [];
  let wire = Buffer.alloc(0);
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  const server = net.createServer((socket) => {
    // SETTINGS_MAX_CONCURRENT_STREAMS 1,000: before a server's SETTINGS, nghttp2 opens only 100 streams.
    socket.write(hex('000006 04 00 00000000 0003 000003e8'));
    socket.on('data', (chunk) => {
      wire = Buffer.concat([wire, chunk]);
      let p = 24;
      const found: Buffer[] = [];
      while (wire.length - p >= 9) {
        const len = wire.readUIntBE(p, 3);
        if (wire.length - p - 9 < len) break;
        if (wire[p + 3] === 1) {
          expect(wire[p + 4]! & 0x4, 'END_HEADERS (blocks here fit one frame)').to.equal(0x4);
          found.push(wire.subarray(p + 9, p + 9 + len));
        }
        p += 9 + len;
      }
      if (found.length === requests.length) {
        blocks.push(...found);
        done();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const session = http2.connect(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
  session.on('error', () => undefined);
  for (const h of requests) session.request(h, { endStream: true }).on('error', () => undefined);
  await all;
  session.destroy();
  server.close();
  return blocks;
}

describe('HPACK decoding (RFC 7541)', () => {
  it('decodes the RFC 7541 C.4 requests (Huffman strings, the dynamic table across blocks)', () => {
    const d = new HpackDecoder();
    expect(d.decode(hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff'), 1e6).fields).to.deep.equal([[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']]);
    expect(d.decode(hex('8286 84be 5886 a8eb 1064 9cbf'), 1e6).fields).to.deep.equal([[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']]);
    expect(d.decode(hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf'), 1e6).fields).to.deep.equal([[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']]);
  });

  it('decodes what nghttp2 encodes: 300 requests with random fields, indexed, evicted and Huffman-coded', async () => {
    const r = rng(7);
    const chars = ' !"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~';
    const text = (n: number) => Array.from({ length: n }, () => (r(10) === 0 ? String.fromCharCode(0x80 + r(128)) : chars[r(chars.length)])).join('');
    const requests = Array.from({ length: 300 }, (_, i) => {
      const h: Record<string, string> = { ':method': 'POST', ':path': `/svc/${text(r(20))}`, 'content-type': 'application/grpc', 'user-agent': 'grpc-node-js/1.0' };
      // Some fields recur (indexed), some are new every time and long (they evict older entries).
      for (let k = 0; k < 1 + r(5); k++) h[`x-${r(30)}`] = r(3) === 0 ? text(r(600)) : `v${r(8)}`;
      if (i % 7 === 0) h['x-big'] = text(3000);
      return h;
    });
    const blocks = await blocksFromNghttp2(requests);
    const d = new HpackDecoder();
    blocks.forEach((block, i) => {
      const got = Object.fromEntries(d.decode(block, 1e6).fields.filter(([n]) => !n.startsWith(':') || n === ':path' || n === ':method'));
      const want = Object.fromEntries(Object.entries(requests[i]!).map(([k, v]) => [k, Buffer.from(v, 'latin1').toString('latin1')]));
      expect(got, `request ${i}`).to.deep.equal(want);
    });
  });

  it('refuses malformed blocks with a reason', () => {
    const bad: [string, Buffer, RegExp][] = [
      ['index 0', hex('80'), /index 0/],
      ['an index past the tables', hex('ff00'), /not in the header table/],
      ['a truncated integer', hex('0fff'), /inside an integer/],
      ['a string past the end', hex('000a61'), /runs past the end/],
      ['Huffman padding of zeros', hex('0081 00 8100'), /padding|invalid code/],
      ['a size update after a field', hex('82 3f00'), /follows a header field/],
      ['a size update above the advertised size', hex('3fe21f'), /exceeds the advertised/],
    ];
    for (const [what, block, reason] of bad) {
      expect(() => new HpackDecoder().decode(block, 1e6), what).to.throw(HpackError, reason);
    }
    // EOS (30 ones) inside a string.
    expect(() => huffmanDecode(hex('ffffffff'), 0, 4)).to.throw(HpackError, /EOS/);
  });

  it('evicts to a dynamic table size update, and reports an oversized list while keeping the table in step', () => {
    const d = new HpackDecoder();
    // custom-key: custom-value, indexed; then the table is shrunk to 0 and the entry is gone.
    d.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'), 1e6);
    expect(d.decode(hex('be'), 1e6).fields).to.deep.equal([['custom-key', 'custom-header']]);
    expect(() => d.decode(hex('20be'), 1e6)).to.throw(HpackError, /not in the header table/);
    const e = new HpackDecoder();
    const big = e.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'), 40);
    expect(big).to.deep.equal({ fields: [], tooLarge: true });
    expect(e.decode(hex('be'), 1e6).fields, 'the oversized block still entered the table').to.deep.equal([['custom-key', 'custom-header']]);
  });

  it('encodes fields as literals that decode back as they were', () => {
    const fields: [string, string][] = [[':status', '200'], ['content-type', 'application/grpc'], ['grpc-status', '3'], ['grpc-message', 'bad%20thing'], ['x-long', 'v'.repeat(300)]];
    expect(new HpackDecoder().decode(encodeHeaders(fields), 1e6).fields).to.deep.equal(fields);
  });
});
