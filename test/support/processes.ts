import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { eventually } from './harness.js';

/** The repository root. */
export const ROOT = path.join(import.meta.dirname, '../..');

/** A child process whose output is kept, with helpers to wait for its JSON log lines. */
export interface Child {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  out(): string;
  err(): string;
  /** Waits for a JSON log line on stderr whose `msg` is `msg`, and returns it parsed. */
  logLine(msg: string, timeoutMs?: number): Promise<Record<string, any>>;
  /** Sends `signal` (default SIGTERM) and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** Spawns `command` with `args`, keeping stdout and stderr. Killed with SIGKILL if the test process exits first. */
export function spawnChild(command: string, args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Child {
  const child = spawn(command, args, { cwd: options.cwd ?? ROOT, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : null))));
  live.add(child);
  void exited.then(() => live.delete(child));
  const find = (msg: string) => stderr.split('\n').find((l) => l.includes(`"msg":${JSON.stringify(msg)}`));
  return {
    child,
    exited,
    out: () => stdout,
    err: () => stderr,
    async logLine(msg, timeoutMs = 20_000) {
      await eventually(() => find(msg) !== undefined || child.exitCode !== null, `log line "${msg}" from ${path.basename(command)} ${args.join(' ')}`, timeoutMs);
      const line = find(msg);
      if (!line) throw new Error(`${command} exited (${child.exitCode}) before logging "${msg}":\n${stderr}`);
      return JSON.parse(line) as Record<string, any>;
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Runs the inferplane CLI: from the sources with tsx, or from a built package directory (`dist/src/main.js`). */
export function inferplane(args: readonly string[], o: { packageDir?: string; env?: NodeJS.ProcessEnv } = {}): Child {
  return o.packageDir
    ? spawnChild(process.execPath, ['dist/src/main.js', ...args], { cwd: o.packageDir, ...(o.env && { env: o.env }) })
    : spawnChild(process.execPath, ['--import=tsx', 'src/main.ts', ...args], { ...(o.env && { env: o.env }) });
}

/** A TCP port that was free on 127.0.0.1 a moment ago (for processes that must be told their port up front). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
