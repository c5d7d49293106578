/**
 * inferplane against go-control-plane, side by side on one harness (`--only fanout --vs go-control-plane`).
 * Both run as their own processes, alternately (A B A B …) within one run: the production build of inferplane
 * (on the image's allocator when this machine has it), fed by its endpoints file; and bench/peers/go-control-plane
 * (SnapshotCache, ADS, one snapshot for every node), fed over HTTP with inferplane's own encoded resources and
 * per-type versions, so both serve the same bytes and neither resends a type that did not change. The same worker processes open N ADS streams, one connection each, SotW or Delta;
 * each round makes one endpoint change and times, per stream, the first EDS response after the change was
 * published (inferplane: its log's publish time, after the file watch's quiet time; the peer: the trigger). Per
 * server: delivery p50/p99/max, RSS per idle stream (before any change, and again once the changes are
 * delivered and ACKed), server CPU per change, RSS 30 s after the streams leave;
 * then inferplane/peer ratios of the medians.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Model } from '../src/model/model.js';
import { translate } from '../src/translate/translate.js';
import { buildSnapshot } from '../src/xds/snapshot.js';
import { buildProduction, fmt, median, now, openStreams, pct, waitFor } from './common.js';
import { freePort } from '../test/support/processes.js';
import { cpuOf, imageAllocator, rssOf } from './common.js';

/** Sizes of a comparison run. */
export interface VsOptions {
  streams: number;
  workers: number;
  rounds: number;
  /** Runs per server, alternating. */
  reps: number;
  variants: readonly ('sotw' | 'delta')[];
  /** Open every stream at once (a fleet reconnecting after a restart) instead of 50 at a time per worker. */
  storm: boolean;
  /** Seconds to wait after the streams leave before reading RSS again. */
  afterSeconds: number;
  fleet: (round: number) => Model;
  rawFleet: (round: number) => object;
  edsNames: string[];
  /**
   * Profile inferplane's server process: each of its runs writes `<profile>.<variant>.<run>.cpuprofile` (the whole
   * run, from start to stop; the rounds are the busy stretches after the streams opened).
   */
  profile?: string | undefined;
}

const ROOT = path.join(import.meta.dirname, '..');
const PEER_DIR = path.join(ROOT, 'bench/peers/go-control-plane');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (b: number) => b / 2 ** 20;

/** A server under test: its process, where it serves, and how to make a change. */
interface Server {
  readonly name: string;
  readonly child: ChildProcess;
  readonly xds: string;
  change(round: number): Promise<void>;
  /** When the last change was published (wall-clock ms): after its trigger delay, for inferplane. */
  publishedAt(): number | undefined;
  stop(): Promise<void>;
}

/** Stops a server; SIGTERM (a clean exit, which writes a CPU profile) when it is being profiled. */
const stopChild = (child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL') => new Promise<void>((resolve) => {
  if (child.exitCode !== null) return resolve();
  child.once('exit', () => resolve());
  child.kill(signal);
});

/** Builds the peer; undefined (with the reason printed) when Go is not on this machine or the build fails. */
export function buildPeer(): string | undefined {
  const bin = path.join(os.tmpdir(), 'inferplane-go-control-plane-peer');
  try {
    execFileSync('go', ['version'], { stdio: 'pipe' });
  } catch {
    console.log('\n--vs go-control-plane: Go is not installed on this machine; the comparison is skipped.');
    return undefined;
  }
  try {
    execFileSync('go', ['build', '-o', bin, '.'], { cwd: PEER_DIR, stdio: 'pipe' });
  } catch (e) {
    console.log(`\n--vs go-control-plane: the peer did not build (${(e as { stderr?: Buffer }).stderr?.toString().trim() ?? String(e)}); the comparison is skipped.`);
    return undefined;
  }
  return bin;
}

async function startInferplane(o: VsOptions, profileAs: string | undefined): Promise<Server> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-vs-'));
  const file = path.join(dir, 'endpoints.json');
  const write = (round: number) => {
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(o.rawFleet(round)));
    fs.renameSync(`${file}.tmp`, file);
  };
  write(0);
  const [xdsPort, adminPort] = [await freePort(), await freePort()];
  const profiling = profileAs ? ['--cpu-prof', `--cpu-prof-dir=${path.dirname(path.resolve(profileAs))}`, `--cpu-prof-name=${path.basename(profileAs)}`] : [];
  const child = spawn(process.execPath, [...profiling, path.join(ROOT, 'dist/src/main.js'), 'serve', '--endpoints', file, '--xds-address', `127.0.0.1:${xdsPort}`,
    '--admin-address', `127.0.0.1:${adminPort}`, '--debounce-ms', '1', '--max-delay-ms', '1'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...imageAllocator() } });
  // The log says when each snapshot was published: delivery is also timed from there, without the file watch's
  // quiet time (50 ms, so an editor's several writes are read once) and the read and translation.
  let publishedAt: number | undefined;
  let buffered = '';
  child.stderr!.on('data', (d: Buffer) => {
    buffered += d.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const l of lines) if (l.includes('"msg":"snapshot published"')) publishedAt = Date.parse((JSON.parse(l) as { time: string }).time);
  });
  for (const deadline = Date.now() + 20_000; ; await sleep(100)) {
    if ((await fetch(`http://127.0.0.1:${adminPort}/readyz`).catch(() => undefined))?.status === 200) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('inferplane did not become ready');
  }
  return {
    name: 'inferplane',
    child,
    xds: `127.0.0.1:${xdsPort}`,
    change: async (round) => write(round),
    publishedAt: () => publishedAt,
    stop: async () => {
      await stopChild(child, profileAs ? 'SIGTERM' : 'SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startPeer(bin: string, o: VsOptions): Promise<Server> {
  const child = spawn(bin, ['-xds', '127.0.0.1:0', '-trigger', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const where = await new Promise<{ xds: string; trigger: string }>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('go-control-plane peer serving'));
      if (line) resolve(JSON.parse(line));
    });
    child.once('exit', (code) => reject(new Error(`the peer exited with ${code}`)));
  });
  // The bytes inferplane itself would serve for this round.
  const change = async (round: number) => {
    const snap = buildSnapshot(translate(o.fleet(round)));
    if (!snap.ok) throw new Error(snap.error.join('\n'));
    const resources = Object.values(snap.value.types).flatMap((t) => [...t.resources.values()].map((r) => ({ typeUrl: r.typeUrl, bytes: Buffer.from(r.bytes).toString('base64') })));
    const versions = Object.fromEntries(Object.entries(snap.value.types).map(([typeUrl, t]) => [typeUrl, t.version]));
    const res = await fetch(`http://${where.trigger}/snapshot`, { method: 'POST', body: JSON.stringify({ versions, resources }) });
    if (res.status !== 204) throw new Error(`the peer refused the snapshot: ${res.status} ${await res.text()}`);
  };
  await change(0);
  // SetSnapshot runs inside the trigger's request: the peer publishes when it is asked to.
  return { name: 'go-control-plane', child, xds: where.xds, change, publishedAt: () => undefined, stop: () => stopChild(child) };
}

interface RunResult {
  /** From publish (inferplane) or trigger (peer) to delivery. */
  p50: number;
  p99: number;
  max: number;
  /** inferplane only: trigger (the file written) to publish. */
  triggerDelay: number;
  rssPerStreamKiB: number;
  /** The same, with the streams idle again after every change was delivered and ACKed. */
  rssSettledPerStreamKiB: number;
  cpuPerChange: number;
  rssBeforeMiB: number;
  rssWithMiB: number;
  rssAfterMiB: number;
  openSeconds: number;
  lost: number;
}

async function measure(server: Server, variant: 'sotw' | 'delta', o: VsOptions, workers: ChildProcess[], firstRound: number): Promise<RunResult> {
  const pid = server.child.pid!;
  await sleep(2000);
  const rssBefore = rssOf(pid);
  const t0 = now();
  const opened = await openStreams(server.xds, o.streams, o.workers, o.edsNames, { children: workers, delta: variant === 'delta', storm: o.storm });
  const openSeconds = (now() - t0) / 1000;
  await sleep(2000);
  const rssWith = rssOf(pid);
  const rows: { p50: number; p99: number; max: number; cpu: number; delay: number }[] = [];
  for (let r = 0; r < o.rounds; r++) {
    await Promise.all(workers.map((w) => {
      const p = waitFor(w, 'armed');
      w.send({ cmd: 'arm' });
      return p;
    }));
    const delivered = Promise.all(workers.map((w) => waitFor<{ times: number[] }>(w, 'times')));
    const cpu0 = cpuOf(pid);
    const start = now();
    await server.change(firstRound + r);
    const times = (await Promise.race([delivered, sleep(120_000).then(() => undefined)]))?.flatMap((x) => x.times);
    if (!times) throw new Error(`${server.name}: not every stream got round ${r}'s change within 120 s`);
    // Let the ACKs of the round reach the server before reading its CPU.
    await sleep(300);
    const from = Math.max(start, server.publishedAt() ?? start);
    const lat = times.map((t) => t - from).sort((a, b) => a - b);
    rows.push({ p50: pct(lat, 50), p99: pct(lat, 99), max: lat[lat.length - 1]!, cpu: cpuOf(pid) - cpu0, delay: from - start });
    await sleep(300);
  }
  // A fleet's streams spend their lives between changes: idle again, after what the changes left behind.
  await sleep(2000);
  const rssSettled = rssOf(pid);
  await Promise.all(workers.map((w) => {
    const p = waitFor(w, 'dropped');
    w.send({ cmd: 'drop' });
    return p;
  }));
  await sleep(o.afterSeconds * 1000);
  const n = o.streams - opened.lost;
  return {
    p50: median(rows.map((r) => r.p50)), p99: median(rows.map((r) => r.p99)), max: median(rows.map((r) => r.max)), cpuPerChange: median(rows.map((r) => r.cpu)), triggerDelay: median(rows.map((r) => r.delay)),
    rssPerStreamKiB: (rssWith - rssBefore) / n / 1024, rssSettledPerStreamKiB: (rssSettled - rssBefore) / n / 1024, rssBeforeMiB: mib(rssBefore), rssWithMiB: mib(rssWith), rssAfterMiB: mib(rssOf(pid)), openSeconds, lost: opened.lost,
  };
}

/** Runs the comparison and prints it. */
export async function versusPeer(o: VsOptions): Promise<void> {
  const bin = buildPeer();
  if (!bin) return;
  buildProduction();
  const allocator = imageAllocator()['LD_PRELOAD'] ? 'jemalloc as in the image' : 'glibc malloc (libjemalloc2 not installed here)';
  console.log(`\nfan-out against go-control-plane ${peerVersion()}: ${o.streams} ADS streams, one connection each, ${o.storm ? 'all opened at once' : 'opened 50 at a time per worker'}, ${o.workers} worker processes; ${o.rounds} changes per run; servers alternating, ${o.reps} runs each; inferplane on ${allocator}`);
  const workers = await openStreams('127.0.0.1:1', 0, o.workers, o.edsNames);
  let round = 1;
  for (const variant of o.variants) {
    const results: Record<string, RunResult[]> = { inferplane: [], 'go-control-plane': [] };
    for (let rep = 0; rep < o.reps; rep++) {
      const profileAs = o.profile && `${o.profile}.${variant}.${rep + 1}.cpuprofile`;
      for (const start of [() => startInferplane(o, profileAs), () => startPeer(bin, o)]) {
        const server = await start();
        try {
          const r = await measure(server, variant, o, workers, round);
          round += o.rounds;
          results[server.name]!.push(r);
          console.log(`  ${variant} ${server.name.padEnd(16)} opened in ${fmt(r.openSeconds)} s${r.lost ? `, LOST ${r.lost}` : ''};${r.triggerDelay ? ` published ${fmt(r.triggerDelay)} ms after the trigger, then` : ''} delivery p50 ${fmt(r.p50)} ms, p99 ${fmt(r.p99)} ms, max ${fmt(r.max)} ms; CPU ${fmt(r.cpuPerChange, 3)} s per change; RSS ${fmt(r.rssBeforeMiB)} → ${fmt(r.rssWithMiB)} MiB (${fmt(r.rssPerStreamKiB)} KiB per stream; ${fmt(r.rssSettledPerStreamKiB)} KiB idle after the changes) → ${fmt(r.rssAfterMiB)} MiB ${o.afterSeconds} s after they left`);
        } finally {
          await server.stop();
        }
      }
    }
    const med = (name: string, k: keyof RunResult) => median(results[name]!.map((r) => r[k]));
    const ratio = (k: keyof RunResult) => fmt(med('inferplane', k) / med('go-control-plane', k), 2);
    const backToBaseline = (name: string) => fmt((med(name, 'rssAfterMiB') / med(name, 'rssBeforeMiB') - 1) * 100, 0);
    console.log(`  ${variant} inferplane/peer, medians: delivery p50 ×${ratio('p50')}, p99 ×${ratio('p99')}, max ×${ratio('max')}; RSS per idle stream ×${ratio('rssPerStreamKiB')} before any change, ×${ratio('rssSettledPerStreamKiB')} after the changes; CPU per change ×${ratio('cpuPerChange')}; RSS ${o.afterSeconds} s after the streams left: inferplane ${backToBaseline('inferplane')}% over its idle baseline, peer ${backToBaseline('go-control-plane')}%; streams lost: inferplane ${results['inferplane']!.reduce((n, r) => n + r.lost, 0)}, peer ${results['go-control-plane']!.reduce((n, r) => n + r.lost, 0)}`);
  }
  for (const w of workers) w.send({ cmd: 'close' });
}

function peerVersion(): string {
  return /github\.com\/envoyproxy\/go-control-plane (v\S+)/.exec(fs.readFileSync(path.join(PEER_DIR, 'go.mod'), 'utf8'))?.[1] ?? 'unknown';
}
