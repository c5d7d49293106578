/**
 * Soak and churn: a real `inferplane serve` process (the production build, file discovery) takes waves of N ADS SotW streams, each on
 * its own connection, that connect, hold while the endpoints file changes every second, and leave, for S
 * seconds. Reports per wave: time to connect, whether every stream got the last change, and the server's RSS;
 * after the last wave: streams left in /status/nodes and RSS at +5 s and +30 s against the baseline before the
 * first wave. Then a NACK storm: N streams that reject every response, against N that ACK, over the same
 * changes: server CPU and responses sent per change (a resend loop shows as more than one per stream).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildProduction, cpuOf, fmt, imageAllocator, median, now, openStreams, rssOf, startServer, waitFor } from './common.js';

/** Sizes of a soak run. */
export interface SoakOptions {
  streams: number;
  workers: number;
  seconds: number;
  /** How long each wave holds its streams while the endpoints change. */
  holdSeconds: number;
  nackStreams: number;
  nackChanges: number;
}

const SERVICES = 20;
const ENDPOINTS = 20;

function endpointsFile(round: number): string {
  const services = Array.from({ length: SERVICES }, (_, s) => ({
    name: `model-${s}`,
    endpoints: Array.from({ length: ENDPOINTS + (s === round % SERVICES ? 1 + (round % 3) : 0) }, (_, e) => ({ address: `10.${s}.${e >> 8}.${e & 255}`, port: 8000 })),
  }));
  return JSON.stringify({ services });
}

const get = async (url: string): Promise<any> => (await fetch(url)).json();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (b: number) => `${fmt(b / 2 ** 20)} MiB`;

/** Sum of a counter over its label sets in a Prometheus text page. */
async function counter(admin: string, name: string, filter = ''): Promise<number> {
  const text = await (await fetch(`${admin}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name) && l.includes(filter)).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

export async function soak(o: SoakOptions): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-soak-'));
  const file = path.join(dir, 'endpoints.json');
  let round = 0;
  const write = () => {
    fs.writeFileSync(`${file}.tmp`, endpointsFile(++round));
    fs.renameSync(`${file}.tmp`, file);
  };
  write();
  buildProduction();
  const server = await startServer(file);
  const pid = server.child.pid!;
  const edsNames = Array.from({ length: SERVICES }, (_, s) => `model-${s}/http`);
  const edsVersion = async () => (await get(`${server.admin}/status/snapshots`)).groups.default.types.eds.version as string;
  const children = await openStreams(server.xds, 0, o.workers, edsNames);
  await sleep(3000);
  const baseline = rssOf(pid);
  console.log(`\nsoak: inferplane serve (its own process), ${SERVICES} services × ${ENDPOINTS} endpoints from a file rewritten every second; waves of ${o.streams} ADS SotW streams (one connection each, ${o.workers} worker processes) holding ${o.holdSeconds} s, for ${o.seconds} s`);
  console.log(`  allocator: ${imageAllocator()['LD_PRELOAD'] ? `jemalloc, as in the image (${imageAllocator()['MALLOC_CONF']})` : "glibc malloc (libjemalloc2 not installed: the image's allocator is not used)"}; baseline RSS ${mib(baseline)}`);

  const started = now();
  const waves: { open: number; rss: number; delivered: boolean }[] = [];
  while (now() - started < o.seconds * 1000) {
    const t0 = now();
    await openStreams(server.xds, o.streams, o.workers, edsNames, { children });
    const open = (now() - t0) / 1000;
    const ticker = setInterval(write, 1000);
    await sleep(o.holdSeconds * 1000);
    clearInterval(ticker);
    // Every stream has the last change.
    await sleep(500);
    const version = await edsVersion();
    const got = await Promise.race([
      Promise.all(children.map((w) => {
        const p = waitFor<{ times: number[] }>(w, 'times');
        w.send({ cmd: 'await', version });
        return p;
      })).then((r) => r.reduce((n, x) => n + x.times.length, 0)),
      sleep(30_000).then(() => -1),
    ]);
    const rss = rssOf(pid);
    const streams = (await get(`${server.admin}/status/nodes`)).nodes.length as number;
    await Promise.all(children.map((w) => {
      const p = waitFor(w, 'dropped');
      w.send({ cmd: 'drop' });
      return p;
    }));
    waves.push({ open, rss, delivered: got === o.streams });
    console.log(`  wave ${waves.length}: ${streams} streams connected in ${fmt(open)} s; ${got === -1 ? 'NOT all' : `${got} of ${o.streams}`} got the last change; RSS ${mib(rss)}`);
    await sleep(2000);
  }
  let left = -1;
  for (const deadline = now() + 10_000; now() < deadline; await sleep(200)) {
    left = (await get(`${server.admin}/status/nodes`)).nodes.length;
    if (left === 0) break;
  }
  const at5 = (await sleep(5000), rssOf(pid));
  await sleep(25_000);
  const at30 = rssOf(pid);
  await sleep(60_000);
  const at90 = rssOf(pid);
  console.log(`  after ${waves.length} waves (${fmt((now() - started) / 1000, 0)} s): ${left} streams left in /status/nodes; median connect ${fmt(median(waves.map((w) => w.open)))} s; every wave delivered: ${waves.every((w) => w.delivered)}`);
  console.log(`  RSS: baseline ${mib(baseline)}, peak with streams ${mib(Math.max(...waves.map((w) => w.rss)))}, +5 s after the last left ${mib(at5)}, +30 s ${mib(at30)} (${fmt((at30 / baseline - 1) * 100)}% over baseline), +90 s ${mib(at90)} (${fmt((at90 / baseline - 1) * 100)}%)`);

  // NACK storm: the same changes, with every stream ACKing, then with every stream rejecting everything.
  for (const nack of [false, true]) {
    await openStreams(server.xds, o.nackStreams, o.workers, edsNames, { children, nack });
    await sleep(1000);
    const r0 = await counter(server.admin, 'inferplane_xds_responses_total', 'type="eds"');
    const n0 = await counter(server.admin, 'inferplane_xds_nacks_total');
    const c0 = cpuOf(pid);
    for (let i = 0; i < o.nackChanges; i++) {
      write();
      await sleep(1000);
    }
    await sleep(1000);
    const cpu = cpuOf(pid) - c0;
    const responses = (await counter(server.admin, 'inferplane_xds_responses_total', 'type="eds"')) - r0;
    const nacks = (await counter(server.admin, 'inferplane_xds_nacks_total')) - n0;
    // Quiet: no change for 3 s. A resend loop would keep sending.
    const q0 = await counter(server.admin, 'inferplane_xds_responses_total');
    await sleep(3000);
    const quiet = (await counter(server.admin, 'inferplane_xds_responses_total')) - q0;
    console.log(`  ${nack ? 'NACK storm' : 'ACKing   '}: ${o.nackStreams} streams, ${o.nackChanges} changes: server CPU ${fmt(cpu / o.nackChanges, 3)} s per change; EDS responses ${fmt(responses / o.nackChanges / o.nackStreams, 2)} per stream per change; NACKs ${nacks}; responses in 3 quiet seconds: ${quiet}`);
    await Promise.all(children.map((w) => {
      const p = waitFor(w, 'dropped');
      w.send({ cmd: 'drop' });
      return p;
    }));
    await sleep(1000);
  }
  for (const w of children) w.send({ cmd: 'close' });
  server.child.kill('SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });
}
