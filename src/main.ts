#!/usr/bin/env node
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { KubeConfig } from '@kubernetes/client-node';
// Only what every command's usage and argument checks need is loaded here; each command imports the rest of
// what it uses when it runs (inferplane --help, status and mode start in ~0.1 s: `npm run bench -- --only startup`).
import { DEFAULT_ADMIN_PORT, DEFAULT_DEBOUNCE, DEFAULT_MAX_STATS_MESSAGE_BYTES, MAX_EXACT_REQUESTS, DEFAULT_SERVICE_SELECTOR, DEFAULT_STREAM_LIMITS, DEFAULT_XDS_PORT } from './config/defaults.js';
import { PACKAGE_ROOT } from './config/package-root.js';
import { DEFAULT_LISTENER } from './model/model.js';
import { parseDuration } from './model/validate.js';
import { DEFAULT_PRESET, ENGINE_PRESETS } from './sim/hardware.js';
import { DEFAULT_SIM } from './sim/server.js';
import type { LogLevel } from './observability/log.js';
import type { Discovery, ScalerSettings } from './serve.js';
import type { IdentityRule } from './xds/identity.js';
import type { StatusView } from './cli/status.js';
import type { ScalingPolicy } from './scaler/decide.js';

const SERVE_USAGE = `usage: inferplane serve [options]

Serves Envoy (and proxyless gRPC clients) over xDS, from a watched endpoints file or from Kubernetes.

  --discovery file|kubernetes   where services and endpoints come from (default file)
  --endpoints FILE              with file: the endpoints file (default: examples/endpoints.yaml in the package)
  --kubeconfig FILE             with kubernetes: a kubeconfig (default: in-cluster, else $KUBECONFIG or ~/.kube/config)
  --namespaces A,B              with kubernetes: namespaces to watch (default: all)
  --service-selector SELECTOR   with kubernetes: Services to serve (default ${DEFAULT_SERVICE_SELECTOR})
  --listener-port N             with kubernetes: the Envoy listener's port (default ${DEFAULT_LISTENER.port})
  --debounce-ms N               with kubernetes: quiet time that ends a burst of events (default ${DEFAULT_DEBOUNCE.holdOffMs})
  --max-delay-ms N              with kubernetes: longest an event waits to be applied (default ${DEFAULT_DEBOUNCE.maxDelayMs})
  --xds-address HOST:PORT       xDS gRPC address (default 0.0.0.0:${DEFAULT_XDS_PORT})
  --admin-address HOST:PORT     admin HTTP address: /readyz /status/nodes /metrics (default 0.0.0.0:${DEFAULT_ADMIN_PORT})
  --tls-cert FILE --tls-key FILE  serve xDS and the MetricsService over TLS (files re-read when they change:
                                a rotated certificate serves new connections, a bad one is logged and the old kept)
  --tls-client-ca FILE          with TLS: require client certificates from this CA (mTLS)
  --node-identity RULE          with mTLS: a node's certificate must prove its node.id, by a SAN made from
                                RULE: uri:TEMPLATE or dns:TEMPLATE with {id} and {cluster}, e.g.
                                uri:spiffe://cluster.local/envoy/{id}; else PERMISSION_DENIED
  --max-names-per-request N     most resource names one xDS request may carry (default ${DEFAULT_STREAM_LIMITS.maxNamesPerRequest})
  --max-names-per-stream N      most resource names one xDS stream may hold subscribed (default ${DEFAULT_STREAM_LIMITS.maxNamesPerStream})
  --max-message-bytes N         largest xDS request accepted (default 1048576)
  --max-response-bytes N        largest xDS response sent (default ${DEFAULT_STREAM_LIMITS.maxResponseBytes}, gRPC's default receive
                                limit): bigger EDS/RDS and Delta answers are split, a configuration whose
                                CDS or LDS, or one resource, would not fit is refused
  --max-stats-message-bytes N   largest Envoy stats message accepted (default ${DEFAULT_MAX_STATS_MESSAGE_BYTES}); larger
                                ones are logged and counted (inferplane_stats_reports_total{outcome="too-large"})
  --shutdown-grace-ms N         on SIGTERM, how long streams get to close (default 5000)
  --scrape-interval-ms N        pull mode: scrape the admin /stats of connected Envoys whose node metadata
                                has inferplane.io/stats-url, this often (default 1000; 0: off)
  --log-level LEVEL             debug | info | warn | error (default info)
  --log-format json|text        JSON lines (default), or one readable line per entry for a terminal

Scaler (sizes each policy service's Deployment from the fleet's in-flight requests; see docs/scaler.md):
  --scaler                      run the scaler in this process
  --policy FILE                 the scaling policy (examples/scaling-policy.yaml shows every key), watched
  --policy-configmap NS/NAME    or: the policy from the ConfigMap's "policy.yaml" key, watched
  --shadow-policy FILE|NS/NAME  a candidate policy run beside the active one on the same stats: its decisions
                                are logged, counted and shown in /status/scaler, never applied (NS/NAME, when
                                no such file exists, is a ConfigMap like --policy-configmap's)
  --dry-run                     decide and log, never write; without Kubernetes, replicas are counted from
                                the served endpoints
  --lease NS/NAME|none          leader election Lease (default: <pod namespace>/inferplane-scaler, or
                                inferplane-scaler-dry-run with --dry-run, so a dry run never blocks the real one)
  --scaler-interval-ms N        decision period (default 1000)
  --advertise-host HOST         where other replicas reach this one's xDS port, published on the Lease so
                                followers forward their Envoys' stats to the leader (default: $POD_IP)
`;

const SIM_USAGE = `usage: inferplane sim-vllm [options]

A vLLM simulator for tests and demos (OpenAI-compatible /v1/completions,
/v1/chat/completions with SSE streaming, /v1/models, /health, /metrics with vLLM's names). No model runs:
latency follows a continuous-batching engine whose steps are derived from the GPU and the model
(src/sim/hardware.ts): bandwidth, FLOP/s, KV cache. Default preset: ${DEFAULT_PRESET}.

  --host HOST                   listen address (default 0.0.0.0)
  --port N                      listen port (default 8000)
  --model NAME                  served model name (default ${DEFAULT_SIM.model})
  --preset NAME                 model and GPU (default ${DEFAULT_PRESET}), one of:
${Object.keys(ENGINE_PRESETS).map((p) => `                                  ${p}`).join('\n')}
  --max-num-seqs N              sequences in the batch at most, as vLLM's flag (default: the preset's, 256)
  --slowdown F                  every step F times longer (F ≥ 1): a slow or shared GPU (default 1)
  --load-seconds S              seconds of model loading before /health is 200 (default 0)
  --max-body-bytes N            largest request body (default ${DEFAULT_SIM.maxBodyBytes})
`;

const STATUS_USAGE = `usage: inferplane status [nodes|services|scaler|explain SERVICE] [--json] [--admin URL]

What a running inferplane says on its admin port, as tables (JSON with --json):

  nodes                         every xDS stream: per type SYNCED, PENDING, NACKED, NOT SENT or STALE (default)
  services                      served services: in-flight requests summed over the reporting Envoys
  scaler                        the scaler's role, policy, and each service's replicas and last decision
  explain SERVICE               why the scaler holds or moves SERVICE, in words
  --admin URL                   the admin endpoint (default http://127.0.0.1:${DEFAULT_ADMIN_PORT})
  --json                        the admin endpoint's JSON, for scripts
`;

const MODE_USAGE = `usage: inferplane mode SERVICE normal|surge|emergency|auto [--for DURATION] [--admin URL]

Forces a service's mode: the scaler's targets and the service's data-plane playbook (timeouts, retries, shed
routes, fallback) switch at once, until set back to auto or for --for (e.g. 10m). Taken only by the replica
that acts as the scaler, from loopback: run it in that pod (kubectl exec) or through kubectl port-forward.

  --for DURATION                lift the forced mode by itself after this long
  --admin URL                   the admin endpoint (default http://127.0.0.1:${DEFAULT_ADMIN_PORT})
`;

const SIMULATE_USAGE = `usage: inferplane simulate SCENARIO.yaml [options]

What-if: replays a day (or a trace) of traffic through simulated Envoys, vLLM pods with cold starts and
autoscalers side by side (inferplane's policy, KPA-like, HPA-like, a fixed fleet, the oracle, the exact-rate
bound), and prints latency, SLO minutes and GPU-hours per run. docs/simulate.md explains the scenario file
and the model; examples/simulate/ has scenarios to start from.

  --mode aggregate|exact        aggregate (fluid, seconds for a day at 200,000 req/s) or exact (every request
                                on a simulated engine; up to ${MAX_EXACT_REQUESTS / 1e6} million per run) (default: the scenario's)
  --duration D                  simulated time, e.g. 30m, 24h (default: the scenario's)
  --peak-rps N                  the pattern's peak, or a constant rate (default: the scenario's)
  --slo D                       the p99 each minute must meet, e.g. 2s (default: the scenario's)
  --engine PRESET               every pod's engine (default: the scenario's), one of:
${Object.keys(ENGINE_PRESETS).map((p) => `                                  ${p}`).join('\n')}
  --balancers N                 Envoys, each counting only its own requests (default: the scenario's)
  --replicas N                  size of every fixed-fleet run (default: the scenario's)
  --policy FILE                 the scaling policy of every policy run, and the target of KPA-like and
                                HPA-like (its normal targetPerPod) (default: the scenario's)
  --seed N                      randomness (default: the scenario's)
  --per-minute                  print every minute of every run (default: hourly rows beyond an hour)
  --json FILE                   write the whole result as JSON (- for stdout, then nothing else is printed)
  --html FILE                   write a self-contained HTML report with charts
`;

const USAGE = `${SERVE_USAGE}\n${SIM_USAGE}\n${STATUS_USAGE}\n${MODE_USAGE}\n${SIMULATE_USAGE}`;

/** Where a usage error points: the command's own --help once the command is known. */
let helpHint = 'see `inferplane --help`';

/**
 * A usage error: one line saying what is wrong and how to fix it, then where the usage is; exit code 2. The usage
 * itself is not printed: fifty lines of it would scroll the one that matters away.
 */
function fail(message: string): never {
  process.stderr.write(`inferplane: ${message}\n${helpHint}\n`);
  process.exit(2);
}

/** Edit distance between two short strings (insertions, deletions, substitutions). */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}

/** The candidate nearest to `word` when it is close enough to be a slip (a third of its length at most), or null. */
function nearest(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = distance(word, c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  return bestD <= Math.max(1, Math.floor(word.length / 3)) ? best : null;
}

/** A TCP port number; 0 asks the system for a free one. */
function portNumber(value: string, flag: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) fail(`${flag} must be a port number from 0 to 65535, got "${value}"`);
  return n;
}

function hostPort(value: string, flag: string): [string, number] {
  const m = /^(.*):(\d+)$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) fail(`${flag} must be HOST:PORT, got "${value}"`);
  return [m[1]!.replace(/^\[(.*)\]$/, '$1'), port];
}

function namespaced(value: string, flag: string): { namespace: string; name: string } {
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-.a-z0-9]*[a-z0-9])?)$/.exec(value);
  if (!m) fail(`${flag} must be NAMESPACE/NAME, got "${value}"`);
  return { namespace: m[1]!, name: m[3]! };
}

/** The namespace this pod runs in (downward API variable, else the service account's), else `default`. */
function podNamespace(): string {
  if (process.env['POD_NAMESPACE']) return process.env['POD_NAMESPACE'];
  try {
    return fs.readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim();
  } catch {
    return 'default';
  }
}

/** Where client-node's loadFromDefault finds a cluster: $KUBECONFIG, ~/.kube/config, or a pod's service account. */
function clusterConfigFound(): boolean {
  if (process.env['KUBECONFIG']) return true;
  if (fs.existsSync(path.join(os.homedir(), '.kube', 'config'))) return true;
  return process.env['KUBERNETES_SERVICE_HOST'] !== undefined && fs.existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token');
}

function positive(value: string, flag: string, min = 1): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) fail(`${flag} must be a whole number of at least ${min}, got "${value}"`);
  return n;
}

const SERVE_OPTIONS = {
  discovery: { type: 'string', default: 'file' },
  endpoints: { type: 'string', default: path.join(PACKAGE_ROOT, 'examples/endpoints.yaml') },
  kubeconfig: { type: 'string' },
  namespaces: { type: 'string', default: '' },
  'service-selector': { type: 'string', default: DEFAULT_SERVICE_SELECTOR },
  'listener-port': { type: 'string', default: String(DEFAULT_LISTENER.port) },
  'debounce-ms': { type: 'string', default: String(DEFAULT_DEBOUNCE.holdOffMs) },
  'max-delay-ms': { type: 'string', default: String(DEFAULT_DEBOUNCE.maxDelayMs) },
  'xds-address': { type: 'string', default: `0.0.0.0:${DEFAULT_XDS_PORT}` },
  'admin-address': { type: 'string', default: `0.0.0.0:${DEFAULT_ADMIN_PORT}` },
  'max-names-per-request': { type: 'string', default: String(DEFAULT_STREAM_LIMITS.maxNamesPerRequest) },
  'max-names-per-stream': { type: 'string', default: String(DEFAULT_STREAM_LIMITS.maxNamesPerStream) },
  'max-message-bytes': { type: 'string', default: '1048576' },
  'max-response-bytes': { type: 'string', default: String(DEFAULT_STREAM_LIMITS.maxResponseBytes) },
  'max-stats-message-bytes': { type: 'string', default: String(DEFAULT_MAX_STATS_MESSAGE_BYTES) },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-client-ca': { type: 'string' },
  'node-identity': { type: 'string' },
  'shutdown-grace-ms': { type: 'string', default: '5000' },
  'scrape-interval-ms': { type: 'string', default: '1000' },
  'log-level': { type: 'string', default: 'info' },
  'log-format': { type: 'string', default: 'json' },
  help: { type: 'boolean', short: 'h' },
  scaler: { type: 'boolean', default: false },
  policy: { type: 'string' },
  'policy-configmap': { type: 'string' },
  'shadow-policy': { type: 'string' },
  'dry-run': { type: 'boolean', default: false },
  lease: { type: 'string' },
  'scaler-interval-ms': { type: 'string', default: '1000' },
  'advertise-host': { type: 'string' },
} as const;

const SIM_OPTIONS = {
  host: { type: 'string', default: '0.0.0.0' },
  port: { type: 'string', default: '8000' },
  model: { type: 'string', default: DEFAULT_SIM.model },
  preset: { type: 'string', default: DEFAULT_PRESET },
  'max-num-seqs': { type: 'string' },
  slowdown: { type: 'string', default: '1' },
  'load-seconds': { type: 'string', default: '0' },
  'max-body-bytes': { type: 'string', default: String(DEFAULT_SIM.maxBodyBytes) },
  help: { type: 'boolean', short: 'h' },
} as const;

const STATUS_OPTIONS = {
  admin: { type: 'string', default: `http://127.0.0.1:${DEFAULT_ADMIN_PORT}` },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h' },
} as const;

const MODE_OPTIONS = {
  admin: { type: 'string', default: `http://127.0.0.1:${DEFAULT_ADMIN_PORT}` },
  for: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const SIMULATE_OPTIONS = {
  mode: { type: 'string' },
  duration: { type: 'string' },
  'peak-rps': { type: 'string' },
  engine: { type: 'string' },
  slo: { type: 'string' },
  balancers: { type: 'string' },
  replicas: { type: 'string' },
  policy: { type: 'string' },
  seed: { type: 'string' },
  'per-minute': { type: 'boolean', default: false },
  json: { type: 'string' },
  html: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const COMMANDS = {
  serve: { options: SERVE_OPTIONS },
  simulate: { options: SIMULATE_OPTIONS },
  'sim-vllm': { options: SIM_OPTIONS },
  status: { options: STATUS_OPTIONS },
  mode: { options: MODE_OPTIONS },
} as const;
type Command = keyof typeof COMMANDS;

/**
 * Parses one command's flags: the command comes first, and a flag of the other command is refused by name
 * rather than silently ignored.
 */
function parseCommand<C extends Command>(command: C, args: string[]) {
  helpHint = `see \`inferplane ${command} --help\``;
  try {
    return parseArgs({ args, options: COMMANDS[command].options as (typeof COMMANDS)[C]['options'], allowPositionals: command === 'status' || command === 'simulate' || command === 'mode', strict: true });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const unknown = /^Unknown option '(--?[^']+)'/.exec(message);
    if (unknown) {
      const flag = unknown[1]!;
      const other = (Object.keys(COMMANDS) as Command[]).find((c) => c !== command && flag.replace(/^-+/, '') in COMMANDS[c].options);
      const near = nearest(flag.replace(/^-+/, ''), Object.keys(COMMANDS[command].options));
      fail(other ? `${flag} is an option of "inferplane ${other}", not of "inferplane ${command}"` : `unknown option ${flag}${near ? `; did you mean --${near}?` : ''}`);
    }
    const ambiguous = /^Option '(--?[\w-]+)[^']*' argument is ambiguous/.exec(message);
    if (ambiguous) fail(`${ambiguous[1]} takes a value, and "-…" after it reads as another option; write ${ambiguous[1]}=VALUE for a value that starts with "-"`);
    const missing = /^Option '(--?[\w-]+)[^']*' argument missing/.exec(message);
    if (missing) fail(`${missing[1]} takes a value: ${missing[1]} VALUE`);
    const positional = /^Unexpected argument '([^']*)'/.exec(message);
    if (positional) fail(`unexpected argument "${positional[1]}" after "inferplane ${command}"`);
    fail(message.split('.')[0]!);
  }
}

/** Fails with a one-line message when a listen address is taken, naming the flag that chose it. */
function explainListenError(e: unknown, flags: readonly { flag: string; port: number }[]): never | void {
  const err = e as NodeJS.ErrnoException & { address?: string; port?: number };
  if (err?.code !== 'EADDRINUSE' && err?.code !== 'EACCES' && err?.code !== 'EADDRNOTAVAIL') return;
  const flag = flags.find((f) => f.port === err.port)?.flag;
  const where = err.address !== undefined && err.port !== undefined ? `${err.address}:${err.port}` : 'a listen address';
  const why = err.code === 'EADDRINUSE' ? 'is already in use' : err.code === 'EACCES' ? 'is not allowed for this user' : 'is not an address of this host';
  process.stderr.write(`inferplane: ${where} ${why}${flag ? ` (${flag})` : ''}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  const [command, ...args] = process.argv.slice(2);
  if (command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return;
  }
  if (command === undefined || command.startsWith('-')) fail('a command is required first: inferplane serve …, inferplane sim-vllm …, inferplane status …, inferplane mode … or inferplane simulate …');
  if (!(command in COMMANDS)) {
    const near = nearest(command, Object.keys(COMMANDS));
    fail(`unknown command "${command}"${near ? `; did you mean "inferplane ${near}"?` : '; the commands are serve, sim-vllm, status, mode and simulate'}`);
  }
  if (command === 'sim-vllm') return runSim(args);
  if (command === 'status') return runStatus(args);
  if (command === 'simulate') return runSimulate(args);
  if (command === 'mode') return runMode(args);
  return runServe(args);
}

async function runStatus(args: string[]): Promise<void> {
  const { values, positionals } = parseCommand('status', args);
  if (values.help) {
    process.stdout.write(STATUS_USAGE);
    return;
  }
  const [what = 'nodes', service, ...extra] = positionals;
  let view: StatusView;
  if (what === 'explain') {
    if (service === undefined || extra.length > 0) fail('explain takes one SERVICE, e.g. inferplane status explain ml/llama-8b');
    view = { kind: 'explain', service };
  } else if (what === 'nodes' || what === 'services' || what === 'scaler') {
    if (service !== undefined) fail(`unexpected argument "${service}" after "inferplane status ${what}"`);
    view = { kind: what };
  } else fail(`unknown view "${what}": nodes, services, scaler or explain SERVICE`);
  if (!/^https?:\/\//.test(values.admin)) fail(`--admin must be an http:// or https:// URL, got "${values.admin}"`);
  const { adminFetcher, renderStatus, StatusError } = await import('./cli/status.js');
  try {
    process.stdout.write(`${await renderStatus(view, adminFetcher(values.admin), values.json)}\n`);
  } catch (e) {
    if (!(e instanceof StatusError)) throw e;
    process.stderr.write(`inferplane status: ${e.message}\n`);
    process.exitCode = 1;
  }
}

async function runMode(args: string[]): Promise<void> {
  const { values, positionals } = parseCommand('mode', args);
  if (values.help) {
    process.stdout.write(MODE_USAGE);
    return;
  }
  const [service, mode, ...extra] = positionals;
  if (service === undefined || mode === undefined) fail('give SERVICE and MODE, e.g. inferplane mode ml/llama-8b emergency --for 10m');
  if (extra.length > 0) fail(`unexpected argument "${extra[0]}" after "inferplane mode ${service} ${mode}"`);
  if (!['normal', 'surge', 'emergency', 'auto'].includes(mode)) fail(`"${mode}" is not a mode: normal, surge, emergency or auto`);
  if (values.for !== undefined && !parseDuration(values.for).ok) fail(`--for: ${(parseDuration(values.for) as { error: string }).error}`);
  if (!/^https?:\/\//.test(values.admin)) fail(`--admin must be an http:// or https:// URL, got "${values.admin}"`);
  const [{ forceMode }, { StatusError }] = await Promise.all([import('./cli/mode.js'), import('./cli/status.js')]);
  try {
    process.stdout.write(`${await forceMode(values.admin, service, mode, values.for)}\n`);
  } catch (e) {
    if (!(e instanceof StatusError)) throw e;
    process.stderr.write(`inferplane mode: ${e.message}\n`);
    process.exitCode = 1;
  }
}

async function runSimulate(args: string[]): Promise<void> {
  const { values, positionals } = parseCommand('simulate', args);
  if (values.help) {
    process.stdout.write(SIMULATE_USAGE);
    return;
  }
  if (positionals.length !== 1) fail(positionals.length === 0 ? 'a scenario file is required: inferplane simulate SCENARIO.yaml' : `one scenario file, got ${positionals.length}: ${positionals.join(' ')}`);
  const whole = (v: string | undefined, flag: string, min: number) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!/^-?\d+$/.test(v) || n < min) fail(`${flag} must be a whole number of at least ${min}, got "${v}"`);
    return n;
  };
  if (values.mode !== undefined && values.mode !== 'aggregate' && values.mode !== 'exact') fail(`--mode must be aggregate or exact, got "${values.mode}"`);
  let durationS: number | undefined;
  if (values.duration !== undefined) {
    const d = parseDuration(values.duration);
    if (!d.ok || d.value <= 0) fail(`--duration must be a duration above zero such as 30m or 24h, got "${values.duration}"`);
    durationS = d.value / 1000;
  }
  let peakRps: number | undefined;
  if (values['peak-rps'] !== undefined) {
    peakRps = Number(values['peak-rps']);
    if (!Number.isFinite(peakRps) || peakRps <= 0) fail(`--peak-rps must be a rate above zero, got "${values['peak-rps']}"`);
  }
  let sloMs: number | undefined;
  if (values.slo !== undefined) {
    const d = parseDuration(values.slo);
    if (!d.ok || d.value <= 0) fail(`--slo must be a duration above zero such as 1s or 500ms, got "${values.slo}"`);
    sloMs = d.value;
  }
  if (values.engine !== undefined && !ENGINE_PRESETS[values.engine]) fail(`--engine: no preset "${values.engine}"; the presets are ${Object.keys(ENGINE_PRESETS).join(', ')}`);
  const overrides = {
    ...(values.engine !== undefined && { engine: ENGINE_PRESETS[values.engine]! }),
    ...(sloMs !== undefined && { sloMs }),
    ...(values.mode !== undefined && { mode: values.mode as 'aggregate' | 'exact' }),
    ...(durationS !== undefined && { durationS }),
    ...(peakRps !== undefined && { peakRps }),
    ...(values.balancers !== undefined && { balancers: whole(values.balancers, '--balancers', 1)! }),
    ...(values.replicas !== undefined && { replicas: whole(values.replicas, '--replicas', 1)! }),
    ...(values.seed !== undefined && { seed: whole(values.seed, '--seed', 0)! }),
  };
  // Output files are checked before the simulation runs, not after it.
  for (const flag of ['html', 'json'] as const) {
    const file = values[flag];
    if (file === undefined || file === '-') continue;
    const dir = path.dirname(path.resolve(file));
    try {
      fs.accessSync(dir, fs.constants.W_OK);
    } catch (e) {
      fail(`--${flag} ${file}: cannot write into ${dir} (${(e as NodeJS.ErrnoException).code ?? String(e)}); name a file in a directory that exists`);
    }
  }
  const [{ loadScenario, loadSimPolicy, withOverrides }, { simulate }, { classTable, minuteTable, renderHtml, summaryTable, verdict }] = await Promise.all([
    import('./simulate/scenario.js'), import('./simulate/simulate.js'), import('./simulate/report.js'),
  ]);
  const loaded = loadScenario(positionals[0]!);
  if (!loaded.ok) {
    process.stderr.write(`inferplane: the scenario is refused; nothing was simulated:\n${loaded.error.map((e) => `  ${e}`).join('\n')}\n`);
    process.exit(1);
  }
  let policy: { source: string; policy: ScalingPolicy } | undefined;
  if (values.policy !== undefined) {
    const read = loadSimPolicy(path.resolve(values.policy));
    if (!read.ok) {
      process.stderr.write(`inferplane: --policy is refused; nothing was simulated:\n${read.error.map((e) => `  ${e}`).join('\n')}\n`);
      process.exit(1);
    }
    policy = { source: values.policy, policy: read.value };
  }
  const scenario = withOverrides(loaded.value, { ...overrides, ...(policy && { policy }) });
  if (!scenario.ok) fail(scenario.error);
  const toStdout = values.json === '-';
  const say = (text: string) => void (toStdout || process.stdout.write(text));
  say(`Simulating ${scenario.value.runs.length} runs of ${positionals[0]} (${scenario.value.mode} mode)…\n`);
  const report = simulate(scenario.value, (r) => say(`  ${r.name}: done\n`));
  if (!report.ok) {
    process.stderr.write(`inferplane: ${report.error}\n`);
    process.exit(1);
  }
  const r = report.value;
  const classes = classTable(r);
  const conclusion = verdict(r);
  say(`\n${summaryTable(r)}\n${conclusion.length > 0 ? `\n${conclusion.join('\n')}\n` : ''}${classes ? `\nPer traffic class (shed: answered 503 on every attempt; fallback: served by the fallback service's fleet):\n${classes}\n` : ''}\n${r.runs.length} runs in ${r.wallSeconds < 0.1 ? `${(r.wallSeconds * 1000).toFixed(0)} ms` : `${r.wallSeconds.toFixed(1)} s`}: ${Math.round(r.simulatedRequestsPerSecond).toLocaleString('en-US')} simulated requests/s\n`);
  const every = values['per-minute'] || scenario.value.durationS <= 3600 ? 1 : 60;
  for (const run of r.runs) say(`\n${run.name}, ${every === 1 ? 'per minute' : 'per hour (the worst minute\'s latency; --per-minute for every minute)'}:\n${minuteTable(run, every)}\n`);
  if (values.json !== undefined) {
    const text = JSON.stringify(r, null, 2) + '\n';
    if (toStdout) process.stdout.write(text);
    else fs.writeFileSync(values.json, text);
  }
  if (values.html !== undefined) {
    fs.writeFileSync(values.html, renderHtml(r));
    say(`\nReport: ${path.resolve(values.html)}\n`);
  }
}

async function runSim(args: string[]): Promise<void> {
  const { values } = parseCommand('sim-vllm', args);
  if (values.help) {
    process.stdout.write(SIM_USAGE);
    return;
  }
  const nonNegative = (v: string, flag: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) fail(`${flag} must be a number of at least 0, got "${v}"`);
    return n;
  };
  const port = portNumber(values.port, '--port');
  const spec = ENGINE_PRESETS[values.preset];
  if (!spec) fail(`--preset: no preset "${values.preset}"; the presets are ${Object.keys(ENGINE_PRESETS).join(', ')}`);
  const slowdown = Number(values.slowdown);
  if (!(slowdown >= 1)) fail(`--slowdown must be a number of at least 1, got "${values.slowdown}"`);
  const { startSimServer } = await import('./sim/server.js');
  const sim = await startSimServer({
    model: values.model,
    engine: { spec: { ...spec, ...(values['max-num-seqs'] !== undefined && { maxNumSeqs: positive(values['max-num-seqs'], '--max-num-seqs') }) }, slowdown },
    loadSeconds: nonNegative(values['load-seconds'], '--load-seconds'),
    maxBodyBytes: positive(values['max-body-bytes'], '--max-body-bytes'),
  }, values.host, port).catch((e: unknown) => explainListenError(e, [{ flag: '--port', port }]) ?? Promise.reject(e));
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: 'info', msg: 'vLLM simulator serving (a test and demo tool: no model runs)', address: `${values.host}:${sim.port}`, model: values.model }) + '\n');
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void sim.close().then(() => process.exit(0)));
}

async function runServe(args: string[]): Promise<void> {
  const { values } = parseCommand('serve', args);
  if (values.help) {
    process.stdout.write(SERVE_USAGE);
    return;
  }
  const level = values['log-level'] as LogLevel;
  if (!['debug', 'info', 'warn', 'error'].includes(level)) fail(`--log-level must be debug, info, warn or error, got "${level}"`);
  const format = values['log-format'];
  if (format !== 'json' && format !== 'text') fail(`--log-format must be json or text, got "${format}"`);
  const [{ createLogger }, { serve }, { parseIdentityRule }] = await Promise.all([import('./observability/log.js'), import('./serve.js'), import('./xds/identity.js')]);
  const log = createLogger(level, format);
  const [, xdsPort] = hostPort(values['xds-address'], '--xds-address');
  const [adminHost, adminPort] = hostPort(values['admin-address'], '--admin-address');
  let loaded: KubeConfig | undefined;
  /** `what` needs the cluster; `fix` says how else to get there, for the message when there is none. */
  const kube = async (what: string, fix: string) => {
    if (loaded) return loaded;
    // Loaded only when a cluster is used: the Kubernetes client alone takes ~0.5 s to load.
    const { KubeConfig } = await import('@kubernetes/client-node');
    loaded = new KubeConfig();
    if (values.kubeconfig) {
      try {
        loaded.loadFromFile(values.kubeconfig);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        fail(`--kubeconfig ${values.kubeconfig}: ${code ? `cannot read it (${code})` : `not a kubeconfig: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`}`);
      }
    } else {
      // client-node would otherwise fall back to http://localhost:8080 and retry it forever.
      if (!clusterConfigFound()) fail(`no Kubernetes cluster found (not in a pod, $KUBECONFIG unset, no ~/.kube/config), and ${what} needs one: pass --kubeconfig FILE, or ${fix}`);
      loaded.loadFromDefault();
    }
    return loaded;
  };
  let discovery: Discovery;
  if (values.discovery === 'file') discovery = { kind: 'file', path: values.endpoints };
  else if (values.discovery === 'kubernetes') {
    const kubeConfig = await kube('--discovery kubernetes', 'serve an endpoints file with --discovery file --endpoints FILE');
    const port = positive(values['listener-port'], '--listener-port');
    if (port > 65535) fail(`--listener-port must be at most 65535, got ${port}`);
    discovery = {
      kind: 'kubernetes',
      kubeConfig,
      namespaces: values.namespaces.split(',').map((n) => n.trim()).filter(Boolean),
      serviceSelector: values['service-selector'],
      listener: { ...DEFAULT_LISTENER, port },
      holdOffMs: positive(values['debounce-ms'], '--debounce-ms'),
      maxDelayMs: positive(values['max-delay-ms'], '--max-delay-ms'),
    };
  } else fail(`--discovery must be file or kubernetes, got "${values.discovery}"`);
  let scaler: ScalerSettings | undefined;
  if (values.scaler) {
    if ((values.policy === undefined) === (values['policy-configmap'] === undefined)) fail('--scaler needs exactly one of --policy FILE and --policy-configmap NS/NAME');
    const policy = values.policy !== undefined ? { kind: 'file' as const, path: values.policy } : { kind: 'configmap' as const, ...namespaced(values['policy-configmap']!, '--policy-configmap') };
    // Kubernetes is needed to write, to read a ConfigMap, or when it is in use anyway; a dry run on a policy
    // file and the endpoints file needs no cluster (the compose stack).
    const shadowValue = values['shadow-policy'];
    const shadowPolicy = shadowValue === undefined ? undefined
      : !fs.existsSync(shadowValue) && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/.test(shadowValue) ? { kind: 'configmap' as const, ...namespaced(shadowValue, '--shadow-policy') }
        : { kind: 'file' as const, path: shadowValue };
    const useKube = !values['dry-run'] || policy.kind === 'configmap' || shadowPolicy?.kind === 'configmap' || values.discovery === 'kubernetes' || values.kubeconfig !== undefined;
    const [what, fix] = policy.kind === 'configmap' || shadowPolicy?.kind === 'configmap' ? ['a policy in a ConfigMap', 'give --policy FILE with --dry-run']
      : !values['dry-run'] ? ['the scaler (it resizes Deployments)', 'add --dry-run: it decides and logs, and writes nothing']
        : ['--kubeconfig', 'leave it out'];
    const kubeConfig = useKube ? await kube(what, fix) : undefined;
    const lease = values.lease === 'none' || !kubeConfig ? undefined : values.lease !== undefined ? namespaced(values.lease, '--lease') : { namespace: podNamespace(), name: values['dry-run'] ? 'inferplane-scaler-dry-run' : 'inferplane-scaler' };
    if (values.lease !== undefined && values.lease !== 'none' && !kubeConfig) fail('--lease needs Kubernetes; a dry run on files runs alone');
    const advertiseHost = values['advertise-host'] ?? process.env['POD_IP'];
    scaler = { policy, ...(shadowPolicy && { shadowPolicy }), dryRun: values['dry-run'], ...(kubeConfig && { kubeConfig }), ...(lease && { lease }), ...(advertiseHost && { advertiseHost }), intervalMs: positive(values['scaler-interval-ms'], '--scaler-interval-ms') };
  } else {
    for (const flag of ['policy', 'policy-configmap', 'shadow-policy', 'lease', 'advertise-host'] as const) if (values[flag] !== undefined) fail(`--${flag} needs --scaler`);
    if (values['dry-run']) fail('--dry-run needs --scaler');
  }
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) fail('--tls-cert and --tls-key go together');
  if (values['tls-client-ca'] !== undefined && values['tls-cert'] === undefined) fail('--tls-client-ca needs --tls-cert and --tls-key');
  const tls = values['tls-cert'] !== undefined ? { certFile: values['tls-cert'], keyFile: values['tls-key']!, ...(values['tls-client-ca'] !== undefined && { clientCaFile: values['tls-client-ca'] }) } : undefined;
  let identity: IdentityRule | undefined;
  if (values['node-identity'] !== undefined) {
    if (values['tls-client-ca'] === undefined) fail('--node-identity needs mTLS: --tls-cert, --tls-key and --tls-client-ca');
    const rule = parseIdentityRule(values['node-identity']);
    if (!rule.ok) fail(`--node-identity: ${rule.error}`);
    identity = rule.value;
  }
  const running = await serve({
    ...(tls && { tls }),
    ...(identity && { identity }),
    discovery,
    xdsAddress: values['xds-address'],
    adminHost,
    adminPort,
    limits: { maxNamesPerRequest: positive(values['max-names-per-request'], '--max-names-per-request'), maxNamesPerStream: positive(values['max-names-per-stream'], '--max-names-per-stream'), maxResponseBytes: positive(values['max-response-bytes'], '--max-response-bytes', 65_536) },
    maxMessageBytes: positive(values['max-message-bytes'], '--max-message-bytes'),
    maxStatsMessageBytes: positive(values['max-stats-message-bytes'], '--max-stats-message-bytes'),
    log,
    instance: os.hostname(),
    ...(scaler && { scaler }),
    scrapeIntervalMs: values['scrape-interval-ms'] === '0' ? 0 : positive(values['scrape-interval-ms'], '--scrape-interval-ms'),
  }).catch((e: unknown) => explainListenError(e, [{ flag: '--xds-address', port: xdsPort }, { flag: '--admin-address', port: adminPort }]) ?? Promise.reject(e));
  const grace = positive(values['shutdown-grace-ms'], '--shutdown-grace-ms');
  let stopping = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      log.info('shutting down', { signal, graceMs: grace });
      void running.stop(grace).then(() => process.exit(0));
    });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`inferplane: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
