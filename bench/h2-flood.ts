/**
 * Fairness under a flood: how long a well-behaved client waits for its first CDS answer while other connections
 * flood the xDS port. The server is `inferplane serve` on examples/endpoints.yaml, in its own process (from
 * `--server-dir`, so another checkout can be measured the same way); the flood is h2load (Debian's
 * nghttp2-client), in processes of its own:
 * - `ads`: 50 connections sending ADS requests (node, CDS type) with END_STREAM at `--h2-rps` in total;
 * - `ads-tls`: the same over TLS;
 * - `handshakes`: new TLS connections, one request each, as fast as two h2load loops can open them.
 * The probe opens a new connection every 250 ms (over TLS in the TLS modes), sends an ADS request
 * and times the first answer. It prints the probes' latencies before and during the flood, the flood's achieved
 * rate, and the server's RSS.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { fmt, machine, median, pct } from './common.js';
import { createTestPki } from '../test/support/certs.js';
import { RawClient } from '../test/support/h2-raw.js';
import { freePort } from '../test/support/processes.js';
import { messageType } from '../src/xds/protos.js';
import { TypeUrl } from '../src/xds/resources.js';

/** Options of {@link h2Flood}. */
export interface FloodOptions {
  readonly mode: 'ads' | 'ads-tls' | 'handshakes';
  readonly serverDir: string;
  readonly seconds: number;
  readonly rps: number;
}

const ADS = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';

function adsRequest(nodeId: string): Buffer {
  const body = Buffer.from(messageType('envoy.service.discovery.v3.DiscoveryRequest').encode({ node: { id: nodeId, cluster: 'bench' }, type_url: TypeUrl.Cluster }).finish());
  const framed = Buffer.alloc(5 + body.length);
  framed.writeUInt32BE(body.length, 1);
  body.copy(framed, 5);
  return framed;
}

/** One probe: a new connection, an ADS request, the time to the first DATA of the answer (ms), or the error. */
function probe(url: string): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, { rejectUnauthorized: false });
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error('no answer within 20 s'));
    }, 20_000);
    session.on('error', (e) => (clearTimeout(timer), reject(e)));
    const req = session.request({ ':method': 'POST', ':path': ADS, 'content-type': 'application/grpc', te: 'trailers' });
    req.on('error', () => undefined);
    req.once('data', () => {
      clearTimeout(timer);
      resolve(performance.now() - t0);
      session.destroy();
    });
    req.write(adsRequest(`probe-${Math.random()}`));
  });
}

function rssMiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

async function waitReady(adminPort: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode}`);
    try {
      const r = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
      if (r.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the server was not ready within 60 s');
}

/** Probes every 250 ms for `seconds`; returns the latencies and the failures. */
async function probeFor(url: string, seconds: number): Promise<{ latencies: number[]; failures: number }> {
  const latencies: number[] = [];
  let failures = 0;
  const pending: Promise<void>[] = [];
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    pending.push(probe(url).then((ms) => void latencies.push(ms), () => void failures++));
    await new Promise((r) => setTimeout(r, 250));
  }
  await Promise.all(pending);
  return { latencies: latencies.sort((a, b) => a - b), failures };
}

const line = (what: string, r: { latencies: number[]; failures: number }) =>
  `${what}: ${r.latencies.length} probes, p50 ${fmt(pct(r.latencies, 50))} ms, p99 ${fmt(pct(r.latencies, 99))} ms, max ${fmt(r.latencies.at(-1) ?? NaN)} ms, ${r.failures} failed`;

/** Runs one flood against a fresh server and prints what the probe saw. */
export async function h2Flood(o: FloodOptions): Promise<void> {
  try {
    execFileSync('h2load', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('h2load is missing: apt-get install nghttp2-client');
  }
  const xdsPort = await freePort();
  const adminPort = await freePort();
  const pki = o.mode !== 'ads' ? createTestPki() : undefined;
  const leaf = pki?.issue('server', { sans: ['DNS:localhost', 'IP:127.0.0.1'] });
  const tlsArgs = leaf ? ['--tls-cert', leaf.cert, '--tls-key', leaf.key] : [];
  const server = spawn(process.execPath, ['--import=tsx', 'src/main.ts', 'serve', '--endpoints', 'examples/endpoints.yaml', '--xds-address', `127.0.0.1:${xdsPort}`, '--admin-address', `127.0.0.1:${adminPort}`, '--log-level', 'error', ...tlsArgs], { cwd: o.serverDir, stdio: ['ignore', 'ignore', 'inherit'] });
  const floods: ChildProcess[] = [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-flood-'));
  try {
    await waitReady(adminPort, server);
    const scheme = leaf ? 'https' : 'http';
    const url = `${scheme}://127.0.0.1:${xdsPort}`;
    console.log(`h2 flood (${o.mode}) against ${o.serverDir} (git ${execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: o.serverDir, encoding: 'utf8' }).trim()}) on ${machine()}`);
    const quiet = await probeFor(url, 3);
    console.log(`  ${line('quiet', quiet)}`);
    const body = path.join(tmp, 'ads.bin');
    fs.writeFileSync(body, adsRequest('flood'));
    const h2loadArgs = ['-H', 'content-type: application/grpc', '-H', 'te: trailers', '-d', body];
    const outputs: string[] = [];
    const runFlood = (args: string[]) => {
      const child = spawn('h2load', [...h2loadArgs, ...args, `${url}${ADS}`], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      child.stdout!.on('data', (d) => (out += d));
      child.on('close', () => outputs.push(out));
      floods.push(child);
      return child;
    };
    const t0 = Date.now();
    let stop = false;
    if (o.mode !== 'handshakes') {
      const clients = 50;
      runFlood(['-c', String(clients), '-m', '10', '--rps', String(Math.max(1, Math.round(o.rps / clients))), '-D', String(o.seconds), '-t', '1']);
    } else {
      // New TLS connections, one request each, back to back in two loops.
      const loop = async () => {
        while (!stop) await new Promise((r) => runFlood(['-c', '100', '-n', '100', '-t', '1']).on('close', r));
      };
      void loop();
      void loop();
    }
    const rssBefore = rssMiB(server.pid!);
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssMiB(server.pid!))), 500);
    await new Promise((r) => setTimeout(r, 1_000));
    const flooded = await probeFor(url, o.seconds - 2);
    stop = true;
    await Promise.all(floods.map((f) => (f.exitCode === null ? new Promise((r) => f.on('close', r)) : undefined)));
    clearInterval(sampler);
    const seconds = (Date.now() - t0) / 1000;
    const done = outputs.map((out) => Number(/requests: \d+ total, \d+ started, (\d+) done/.exec(out)?.[1] ?? 0)).reduce((a, b) => a + b, 0);
    console.log(`  ${line('flooded', flooded)}`);
    console.log(`  flood: ${done} requests done in ${fmt(seconds)} s (${fmt(done / seconds, 0)}/s)${o.mode === 'handshakes' ? `, ${outputs.length} h2load runs of 100 new TLS connections` : ''}; server RSS ${fmt(rssBefore, 0)} → peak ${fmt(rssPeak, 0)} MiB`);
    console.log(`  probe p50 under flood ×${fmt(median(flooded.latencies) / median(quiet.latencies))} of quiet`);
  } finally {
    stop_(floods);
    server.kill('SIGKILL');
    pki?.remove();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function stop_(children: ChildProcess[]): void {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
}

/** Starts `inferplane serve` from `dir` on free ports; resolves once it is ready. */
async function startServer(dir: string): Promise<{ child: ChildProcess; xdsPort: number }> {
  const xdsPort = await freePort();
  const adminPort = await freePort();
  const child = spawn(process.execPath, ['--import=tsx', 'src/main.ts', 'serve', '--endpoints', 'examples/endpoints.yaml', '--xds-address', `127.0.0.1:${xdsPort}`, '--admin-address', `127.0.0.1:${adminPort}`, '--log-level', 'error'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  await waitReady(adminPort, child);
  return { child, xdsPort };
}

/** Frames for raw clients. */
function frame(type: number, flags: number, id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(id, 5);
  return Buffer.concat([h, payload]);
}

/**
 * One connection sends HEADERS without END_HEADERS, then empty CONTINUATION frames as fast as the socket takes
 * them, for `seconds` or until the server closes it (CVE-2024-27316). Prints the frames and bytes the server
 * read before it ended the connection, how, and its RSS.
 */
export async function continuationFlood(o: { serverDir: string; seconds: number }): Promise<void> {
  const net = await import('node:net');
  const { encodeHeaders } = await import('../src/grpc/hpack.js');
  const { child, xdsPort } = await startServer(o.serverDir);
  try {
    const rss0 = rssMiB(child.pid!);
    let rssPeak = rss0;
    const socket = net.connect(xdsPort, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    let goaway: string | undefined;
    let closed = false;
    let received = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      received = Buffer.concat([received, d]);
      for (let p = 0; p + 9 <= received.length; ) {
        const len = received.readUIntBE(p, 3);
        if (p + 9 + len > received.length) break;
        if (received[p + 3] === 7 && !goaway) goaway = `GOAWAY code ${received.readUInt32BE(p + 13)} "${received.subarray(p + 17, p + 9 + len).toString()}"`;
        p += 9 + len;
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => (closed = true));
    socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0), frame(1, 0, 1, encodeHeaders([[':method', 'POST'], [':scheme', 'http'], [':path', ADS]]))]));
    const batch = Buffer.concat(Array.from({ length: 4096 }, () => frame(9, 0, 1)));
    let frames = 0;
    const t0 = Date.now();
    while (!closed && !goaway && Date.now() - t0 < o.seconds * 1000 && rssPeak < 4096) {
      if (!socket.write(batch)) await new Promise((r) => socket.once('drain', r).once('close', r));
      frames += 4096;
      rssPeak = Math.max(rssPeak, rssMiB(child.pid!));
    }
    await new Promise((r) => setTimeout(r, 500));
    rssPeak = Math.max(rssPeak, rssMiB(child.pid!));
    console.log(`empty-CONTINUATION flood against ${o.serverDir} (git ${execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: o.serverDir, encoding: 'utf8' }).trim()}) on ${machine()}`);
    console.log(`  ${goaway ?? (closed ? 'closed without GOAWAY' : 'no GOAWAY')} after ${fmt((Date.now() - t0) / 1000)} s; the client had written ${frames.toLocaleString('en')} frames (${fmt((frames * 9) / 2 ** 20)} MiB) by then (socket buffers hold what the server never read); server RSS ${fmt(rss0, 0)} → peak ${fmt(rssPeak, 0)} MiB`);
    socket.destroy();
  } finally {
    child.kill('SIGKILL');
  }
}

/**
 * Resets, counted as the server counts them, by raw-frame clients: one cancels 1,200 ADS streams after each was
 * answered, within 10 s (how clients end long calls); one keeps a first stream open, then opens and resets
 * 5,000 streams before any answer (CVE-2023-44487). Prints whether and when each got a GOAWAY, and whether
 * the first stream is still answered after it.
 */
export async function resetBehaviour(o: { serverDir: string }): Promise<void> {
  const { child, xdsPort } = await startServer(o.serverDir);
  const body = (type: string, nodeId?: string) => Buffer.from(messageType('envoy.service.discovery.v3.DiscoveryRequest').encode({ ...(nodeId && { node: { id: nodeId } }), type_url: type }).finish());
  const goawayOf = (c: RawClient) => {
    const f = c.frames.find((x) => x.type === 7);
    return f && `GOAWAY code ${f.payload.readUInt32BE(4)} (last stream ${f.payload.readUInt32BE(0)}) "${f.payload.subarray(8).toString()}"`;
  };
  const cancel = Buffer.from([0, 0, 0, 8]);
  // Windows wide open: the answers must not wait on a client that never sends WINDOW_UPDATE.
  const open = async () => {
    const c = await RawClient.open(xdsPort, [[4, 2 ** 31 - 1]]);
    c.send(8, 0, 0, Buffer.from([0x7f, 0xff, 0x00, 0x00]));
    return c;
  };
  try {
    console.log(`resets against ${o.serverDir} (git ${execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: o.serverDir, encoding: 'utf8' }).trim()}) on ${machine()}`);
    const answered = await open();
    const t0 = Date.now();
    let cancelled = 0;
    for (let batch = 0; batch < 12 && !answered.closed; batch++) {
      const ids = Array.from({ length: 100 }, (_, i) => 2 * (batch * 100 + i) + 1);
      for (const id of ids) {
        answered.request(id, ADS);
        answered.message(id, body(TypeUrl.Cluster, `answered-${id}`));
      }
      const deadline = Date.now() + 10_000;
      while (!ids.every((id) => answered.frames.some((f) => f.type === 0 && f.id === id)) && Date.now() < deadline && !answered.closed) await new Promise((r) => setTimeout(r, 5));
      for (const id of ids) answered.send(3, 0, id, cancel);
      cancelled += ids.length;
    }
    await new Promise((r) => setTimeout(r, 300));
    console.log(`  cancelling answered streams: ${cancelled} cancelled in ${fmt((Date.now() - t0) / 1000)} s; ${goawayOf(answered) ?? 'no GOAWAY: the connection is kept'}`);
    answered.close();

    const rapid = await open();
    rapid.request(1, ADS);
    rapid.message(1, body(TypeUrl.Cluster, 'rapid'));
    while (!rapid.frames.some((f) => f.type === 0 && f.id === 1)) await new Promise((r) => setTimeout(r, 5));
    let opened = 0;
    for (let id = 3; opened < 5_000 && !rapid.closed && !goawayOf(rapid); id += 2, opened++) {
      rapid.request(id, ADS);
      rapid.send(3, 0, id, cancel);
      if (opened % 100 === 99) await new Promise((r) => setTimeout(r, 1));
    }
    await new Promise((r) => setTimeout(r, 300));
    const before = rapid.frames.filter((f) => f.type === 0 && f.id === 1).length;
    // The first stream asks for listeners: answered at once if the stream still runs.
    rapid.message(1, body(TypeUrl.Listener));
    await new Promise((r) => setTimeout(r, 1_000));
    const after = rapid.frames.filter((f) => f.type === 0 && f.id === 1).length;
    console.log(`  resetting unanswered streams: ${goawayOf(rapid) ?? 'no GOAWAY'} after ${opened} opened and reset; the stream opened first ${after > before ? 'was answered again after it' : 'got no answer after it'}`);
    rapid.close();
  } finally {
    child.kill('SIGKILL');
  }
}
