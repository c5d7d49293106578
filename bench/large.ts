/**
 * A large configuration through the production build: an endpoints file of 5,000 services × 35 endpoints
 * (175,000), then a rewrite that changes every service's endpoints. Prints the time to first publish, RSS, the
 * time from the rewrite to the new version being served, and how long the server's event loop stopped at a
 * time while it worked, seen from outside: an admin request is kept in flight back to back the whole time,
 * and each one's latency bounds the longest block it met. A few ADS streams subscribed to every assignment
 * take each version, so the fan-out of 4 MB responses is part of the work measured.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildProduction, fmt, machine, median, now, openStreams, pct, rssOf, startServer } from './common.js';

/** Options of {@link large}. */
export interface LargeOptions {
  readonly services: number;
  readonly endpoints: number;
  /** ADS streams subscribed to every assignment. */
  readonly streams: number;
  /** Rewrites after the first publish. */
  readonly rewrites: number;
}

/** The endpoints file, in YAML as operators write it; `round` moves one endpoint of every service. */
function endpointsYaml(o: LargeOptions, round: number): string {
  const lines = ['services:'];
  for (let s = 0; s < o.services; s++) {
    lines.push(`  - name: model-${s}`, '    endpoints:');
    for (let e = 0; e < o.endpoints; e++) {
      const host = e === 0 ? 200 + (round % 50) : e;
      lines.push(`      - { address: 10.${s >> 8}.${s & 255}.${host}, port: 8000, zone: zone-${e % 3} }`);
    }
  }
  return `${lines.join('\n')}\n`;
}

const get = async (url: string): Promise<any> => (await fetch(url)).json();
const mib = (b: number) => `${fmt(b / 2 ** 20)} MiB`;

/** Keeps one request to `url` in flight until stopped; returns each one's latency in ms. */
function probe(url: string): { stop(): Promise<number[]> } {
  const latencies: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const t = now();
      await (await fetch(url)).arrayBuffer();
      latencies.push(now() - t);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return latencies;
    },
  };
}

export async function large(o: LargeOptions): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-large-'));
  const file = path.join(dir, 'endpoints.yaml');
  // Written without blocking this process, whose probe must not measure its own stalls.
  const write = async (text: string) => {
    await fs.promises.writeFile(`${file}.tmp`, text);
    await fs.promises.rename(`${file}.tmp`, file);
  };
  await write(endpointsYaml(o, 0));
  const bytes = fs.statSync(file).size;
  console.log(`\nlarge configuration: ${o.services.toLocaleString('en-US')} services × ${o.endpoints} endpoints = ${(o.services * o.endpoints).toLocaleString('en-US')}, a ${mib(bytes)} YAML endpoints file; production build (dist/)`);
  console.log(`  machine: ${machine()}`);
  buildProduction();
  const t0 = now();
  const server = await startServer(file);
  const firstPublish = (now() - t0) / 1000;
  const pid = server.child.pid!;
  const edsVersion = async () => (await get(`${server.admin}/status/snapshots`)).groups.default.types.eds.version as string;
  try {
    const names = Array.from({ length: o.services }, (_, s) => `model-${s}/http`);
    const workers = await openStreams(server.xds.replace('0.0.0.0', '127.0.0.1'), o.streams, Math.min(o.streams, 2), names);
    console.log(`  first publish ${fmt(firstPublish)} s after start (parse on a worker thread, translate, encode); RSS ${mib(rssOf(pid))} with ${o.streams} ADS streams holding every assignment`);
    const rows: { seconds: number; max: number; p99: number; count: number; rss: number }[] = [];
    for (let round = 1; round <= o.rewrites; round++) {
      const before = await edsVersion();
      const text = endpointsYaml(o, round);
      const p = probe(`${server.admin}/healthz`);
      const t = now();
      await write(text);
      while ((await edsVersion()) === before) await new Promise((r) => setTimeout(r, 20));
      const seconds = (now() - t) / 1000;
      await new Promise((r) => setTimeout(r, 2000)); // the fan-out to the streams, after the publish
      const lat = (await p.stop()).sort((a, b) => a - b);
      rows.push({ seconds, max: lat[lat.length - 1]!, p99: pct(lat, 99), count: lat.length, rss: rssOf(pid) });
      console.log(`  rewrite ${round}: served ${fmt(seconds, 2)} s after the write; admin probe ${lat.length} requests, p99 ${fmt(pct(lat, 99))} ms, max ${fmt(lat[lat.length - 1]!)} ms; RSS ${mib(rssOf(pid))}`);
    }
    console.log(`  median of ${rows.length}: rewrite → served ${fmt(median(rows.map((r) => r.seconds)), 2)} s; longest event-loop stop seen by the probe ${fmt(median(rows.map((r) => r.max)))} ms (worst ${fmt(Math.max(...rows.map((r) => r.max)))} ms); RSS ${mib(median(rows.map((r) => r.rss)))}`);
    for (const w of workers) w.kill();
  } finally {
    server.child.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
