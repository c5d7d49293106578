/**
 * Start-up budgets of the production build (dist/, what the image and `npx inferplane` outside a clone run):
 * the light commands (`--help`, `status`, `mode`) under 300 ms, and `serve` on the example endpoints file ready
 * (`/readyz` 200) in under a second. Each figure is the median of `rounds` fresh processes; bare `node -e 0` is
 * measured beside them, since on a busy machine both move together. "Where the time goes" loads the heavy
 * modules one per fresh process: what a command would pay if it imported them.
 */
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { buildProduction, fmt, imageAllocator, machine, median } from './common.js';

let ROOT = path.join(import.meta.dirname, '..');
let MAIN = path.join(ROOT, 'dist/src/main.js');

function timeOnce(args: readonly string[]): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { stdio: 'ignore', cwd: ROOT });
  if (r.error) throw r.error;
  return Number(process.hrtime.bigint() - t) / 1e6;
}

/** Milliseconds from spawning `serve` to its first `/readyz` 200, and to its "inferplane serving" log line. */
function serveReady(): Promise<{ readyMs: number; loggedMs: number }> {
  const t0 = process.hrtime.bigint();
  const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
  const child = spawn(process.execPath, [MAIN, 'serve', '--xds-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...imageAllocator() }, cwd: ROOT });
  return new Promise((resolve, reject) => {
    let buffered = '';
    const deadline = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('serve was not ready within 30 s'));
    }, 30_000);
    child.on('exit', (code) => code !== 0 && code !== null && reject(new Error(`serve exited with ${code}`)));
    child.stderr!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const line = buffered.split('\n').find((l) => l.includes('inferplane serving'));
      if (!line) return;
      child.stderr!.removeAllListeners('data');
      child.stderr!.resume();
      const loggedMs = ms();
      const admin = (JSON.parse(line) as { admin: string }).admin;
      const poll = () => http.get(`http://${admin}/readyz`, (res) => {
        res.resume();
        if (res.statusCode === 200) {
          const readyMs = ms();
          clearTimeout(deadline);
          child.once('exit', () => resolve({ readyMs, loggedMs }));
          child.kill('SIGTERM');
        } else setTimeout(poll, 2);
      }).on('error', () => setTimeout(poll, 2));
      poll();
    });
  });
}

/**
 * Runs the start-up benchmark and prints its figures. `dir`: another checkout to measure (its dist/ built
 * already, e.g. an older commit for a before/after comparison); default this one, built first.
 */
export async function startup(rounds: number, dir?: string): Promise<void> {
  if (dir !== undefined) [ROOT, MAIN] = [path.resolve(dir), path.resolve(dir, 'dist/src/main.js')];
  else buildProduction();
  console.log(`\nstart-up of the production build (${path.relative(process.cwd(), ROOT) || '.'}/dist): medians of ${rounds} fresh processes; ${machine()}`);
  const commands: [string, string[], number | null][] = [
    ['node -e 0 (Node itself)', ['-e', '0'], null],
    ['inferplane --help', [MAIN, '--help'], 300],
    ['inferplane status --help', [MAIN, 'status', '--help'], 300],
    ['inferplane mode --help', [MAIN, 'mode', '--help'], 300],
    // No server there: the whole command runs, connects, and says so in one line.
    ['inferplane status (no server)', [MAIN, 'status', '--admin', 'http://127.0.0.1:9'], 300],
    ['inferplane mode (no server)', [MAIN, 'mode', 'ml/llama', 'auto', '--admin', 'http://127.0.0.1:9'], 300],
    ['inferplane simulate --help', [MAIN, 'simulate', '--help'], null],
  ];
  const rows: string[] = [];
  for (const [name, args, budget] of commands) {
    const times = Array.from({ length: rounds }, () => timeOnce(args));
    const m = median(times);
    rows.push(`  ${name.padEnd(34)} ${fmt(m, 0).padStart(6)} ms${budget !== null ? `   budget ${budget} ms: ${m < budget ? 'met' : 'MISSED'}` : ''}`);
  }
  const ready: number[] = [];
  const logged: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const r = await serveReady();
    ready.push(r.readyMs);
    logged.push(r.loggedMs);
  }
  const readyMedian = median(ready);
  rows.push(`  ${'serve examples/endpoints.yaml'.padEnd(34)} ${fmt(readyMedian, 0).padStart(6)} ms to /readyz 200 (log line "serving" at ${fmt(median(logged), 0)} ms)   budget 1000 ms: ${readyMedian < 1000 ? 'met' : 'MISSED'}`);
  console.log(rows.join('\n'));
  console.log('where the time goes (each loaded alone in a fresh process, Node\'s own start included):');
  const modules: [string, string][] = [
    ['@kubernetes/client-node (only with a cluster)', '@kubernetes/client-node'],
    ['dist/src/serve.js (xDS, gRPC, protobufjs, Envoy protos)', path.join(ROOT, 'dist/src/serve.js')],
    ['dist/src/simulate/scenario.js (simulate)', path.join(ROOT, 'dist/src/simulate/scenario.js')],
    ['dist/src/cli/status.js (status, mode)', path.join(ROOT, 'dist/src/cli/status.js')],
  ];
  for (const [name, mod] of modules) {
    const script = `await import(${JSON.stringify(mod)})`;
    const times = Array.from({ length: rounds }, () => timeOnce(['--input-type=module', '-e', script]));
    console.log(`  ${name.padEnd(58)} ${fmt(median(times), 0).padStart(6)} ms`);
  }
}
