import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes on one machine. */
export const now = (): number => performance.timeOrigin + performance.now();

/** The p-th percentile of an ascending array (nearest rank). */
export function pct(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** The median; of an even count, the mean of the middle two (two alternating runs give their mean). */
export function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
export const fmt = (n: number, d = 1): string => n.toFixed(d);

/** One line describing the machine. */
export function machine(): string {
  const cpus = os.cpus();
  return `${cpus.length} × ${cpus[0]?.model ?? 'unknown CPU'}, ${fmt(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
}

/** Waits for an IPC message with `cmd` from a child; rejects on {cmd:'error'}. */
export function waitFor<T>(child: ChildProcess, cmd: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const on = (m: any) => {
      if (m.cmd === cmd) {
        child.off('message', on);
        resolve(m as T);
      } else if (m.cmd === 'error') reject(new Error(m.error));
    };
    child.on('message', on);
  });
}

/** Forks a TypeScript module of bench/ with IPC. */
export function forkTs(file: string): ChildProcess {
  return fork(path.join(import.meta.dirname, file), { execArgv: ['--import=tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

/** How streams are opened: see bench/fanout-worker.ts. */
export interface OpenOptions {
  /** Every stream rejects every response. */
  nack?: boolean;
  /** Delta ADS instead of SotW. */
  delta?: boolean;
  /** All at once, instead of 50 at a time per worker. */
  storm?: boolean;
  /** Workers to reuse, instead of starting new ones. */
  children?: ChildProcess[];
}

/**
 * Starts `workers` stream workers (or reuses `o.children`) and opens `streams` streams across them, each
 * subscribing EDS to `edsNames`. Returns the workers and how many streams failed before their first response,
 * with a sample of why. Throws when any was lost and `o.storm` is not set (only a storm may lose some).
 */
export async function openStreams(address: string, streams: number, workers: number, edsNames: string[], o: OpenOptions = {}): Promise<ChildProcess[] & { lost: number; sample: string[] }> {
  const children = o.children ?? Array.from({ length: workers }, () => forkTs('fanout-worker.ts'));
  const per = Math.ceil(streams / children.length);
  const opened = await Promise.all(children.map((w, i) => {
    w.send({ cmd: 'open', address, count: Math.max(0, Math.min(per, streams - i * per)), base: i * per, edsNames, nack: o.nack ?? false, delta: o.delta ?? false, storm: o.storm ?? false });
    return waitFor<{ lost: number; sample: string[] }>(w, 'opened');
  }));
  const lost = opened.reduce((n, r) => n + r.lost, 0);
  const sample = [...new Set(opened.flatMap((r) => r.sample))];
  if (lost > 0 && !o.storm) throw new Error(`${lost} streams failed to open: ${sample.join('; ')}`);
  return Object.assign([...children], { lost, sample });
}

/** CPU-profiles this process (the server) until stop(), writing a .cpuprofile for Chrome DevTools. */
export async function startProfile(): Promise<{ stop(file: string): Promise<void> }> {
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return {
    async stop(file) {
      const { profile } = await session.post('Profiler.stop');
      (await import('node:fs')).writeFileSync(file, JSON.stringify(profile));
      session.disconnect();
    },
  };
}


/** Compiles the production build into dist/ (what the image runs), for benchmarks that start it as a process. */
export function buildProduction(): void {
  const root = path.join(import.meta.dirname, '..');
  execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
}

const ROOT = path.join(import.meta.dirname, '..');

/** Resident memory of a process (Linux: /proc). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** User + system CPU seconds of a process so far (Linux: /proc, clock ticks of 10 ms). */
export function cpuOf(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * The allocator settings of the image (Dockerfile: jemalloc, returning freed pages within a second), when this
 * machine has Debian's libjemalloc2; else glibc's malloc, which keeps what closed connections freed.
 */
export function imageAllocator(): Record<string, string> {
  const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const env = Object.fromEntries([...dockerfile.matchAll(/^ENV (LD_PRELOAD|MALLOC_CONF)=(\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
  const lib = env['LD_PRELOAD'];
  const found = lib !== undefined && ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib'].some((d) => fs.existsSync(path.join(d, lib)));
  return found ? env : {};
}

/**
 * Starts the production build, as deployed, serving `file`; resolves once it logs that it serves (which, with an
 * endpoints file, is after its first publish). The production build, as deployed: compiled to dist/ first (no tsx, no compile cache in the server's memory). */
export async function startServer(file: string): Promise<{ child: ChildProcess; xds: string; admin: string }> {
  const child = spawn(process.execPath, [path.join(ROOT, 'dist/src/main.js'), 'serve', '--endpoints', file, '--xds-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0', '--debounce-ms', '50', '--max-delay-ms', '200'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...imageAllocator() } });
  let buffered = '';
  return new Promise((resolve, reject) => {
    // The log (JSON lines on stderr) says where it listens.
    child.stderr!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      for (const line of buffered.split('\n').slice(0, -1)) {
        if (line.includes('memory released')) console.log(`  server: ${line}`);
        if (!line.includes('inferplane serving')) continue;
        const fields = JSON.parse(line) as { xds: string; admin: string };
        resolve({ child, xds: fields.xds, admin: `http://${fields.admin}` });
      }
      buffered = buffered.slice(buffered.lastIndexOf('\n') + 1);
    });
    child.on('exit', (code) => reject(new Error(`inferplane exited with ${code}`)));
  });
}
