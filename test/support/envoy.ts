import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { eventually } from './harness.js';
import { ROOT, spawnChild, type Child } from './processes.js';

/** Where test/setup/envoy.mjs (run by `npm test`) links the pinned Envoy binary. */
export const ENVOY_BIN = path.join(ROOT, '.envoy/envoy');

/**
 * The Envoy binary the tests run, after checking that it runs. A missing or broken Envoy fails the test that
 * needs it, with the way to install it: the real-Envoy tests are never skipped.
 */
export function envoyBinary(): string {
  try {
    execFileSync(ENVOY_BIN, ['--version'], { stdio: 'pipe' });
  } catch (e) {
    throw new Error(`Envoy is not runnable at ${ENVOY_BIN} (npm test installs it: node test/setup/envoy.mjs): ${e instanceof Error ? e.message : String(e)}`);
  }
  return ENVOY_BIN;
}

/** The version the installed Envoy reports, e.g. `1.40.0`. */
export function envoyVersion(): string {
  return /\/(\d+\.\d+\.\d+)\//.exec(execFileSync(envoyBinary(), ['--version'], { encoding: 'utf8' }))?.[1] ?? 'unknown';
}

/** A running Envoy with its admin endpoint at hand. */
export interface RunningEnvoy {
  readonly adminUrl: string;
  readonly process: Child;
  /** GET on the admin endpoint, parsed as JSON. */
  adminJson(pathAndQuery: string): Promise<any>;
  /** Every stat Envoy has (counters and gauges), from `/stats?format=json`. */
  stats(): Promise<Map<string, number>>;
  /** One stat; 0 when Envoy has not created it. */
  stat(name: string): Promise<number>;
  /** Stops Envoy (SIGTERM) and removes its files. */
  stop(): Promise<void>;
}

/** Options of {@link startEnvoy}. */
export interface EnvoyOptions {
  /** A bootstrap under envoy/ (e.g. `front-proxy.yaml`); only where inferplane is and the admin port are changed. */
  readonly bootstrap: string;
  readonly xdsPort: number;
  /** `--service-node` / `--service-cluster` (the sidecar bootstrap takes them from the command line). */
  readonly serviceNode?: string;
  readonly serviceCluster?: string;
  /** Further edits of the parsed bootstrap (e.g. stats sink options), applied after the address change. */
  readonly edit?: (bootstrap: any) => void;
  /** Worker threads (default 1). */
  readonly concurrency?: number;
  /** For the mTLS bootstraps: the directory holding tls.crt, tls.key and ca.crt (instead of /etc/envoy/tls). */
  readonly tlsDir?: string;
}

/**
 * The bootstrap file as shipped, with inferplane at 127.0.0.1:`xdsPort`, the admin on an ephemeral port, and
 * (mTLS variants) the certificate directory at `tlsDir`.
 */
export function testBootstrap(file: string, xdsPort: number, tlsDir?: string): any {
  const text = fs.readFileSync(path.join(ROOT, 'envoy', file), 'utf8');
  const doc = parse(tlsDir ? text.replaceAll('/etc/envoy/tls', tlsDir) : text);
  doc.admin.address.socket_address.port_value = 0;
  const xds = doc.static_resources.clusters.find((c: any) => c.name === 'inferplane_xds');
  xds.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address = { address: '127.0.0.1', port_value: xdsPort };
  return doc;
}

/** Starts Envoy on a bootstrap from envoy/ and waits until its admin endpoint answers. */
export async function startEnvoy(o: EnvoyOptions): Promise<RunningEnvoy> {
  const bin = envoyBinary();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-envoy-'));
  const doc = testBootstrap(o.bootstrap, o.xdsPort, o.tlsDir);
  o.edit?.(doc);
  const config = path.join(dir, 'bootstrap.yaml');
  fs.writeFileSync(config, stringify(doc));
  const adminPath = path.join(dir, 'admin-address');
  const args = [
    '-c', config, '--admin-address-path', adminPath, '--use-dynamic-base-id', '--disable-hot-restart',
    '--concurrency', String(o.concurrency ?? 1), '-l', 'warning', '--drain-time-s', '1', '--parent-shutdown-time-s', '2',
    ...(o.serviceNode ? ['--service-node', o.serviceNode] : []),
    ...(o.serviceCluster ? ['--service-cluster', o.serviceCluster] : []),
  ];
  const child = spawnChild(bin, args);
  await eventually(() => fs.existsSync(adminPath) && fs.readFileSync(adminPath, 'utf8').includes(':') || child.child.exitCode !== null, 'Envoy admin address', 20_000);
  if (child.child.exitCode !== null) throw new Error(`Envoy exited (${child.child.exitCode}):\n${child.err()}`);
  const adminUrl = `http://${fs.readFileSync(adminPath, 'utf8').trim()}`;
  const adminJson = async (p: string) => {
    const r = await fetch(`${adminUrl}${p}`);
    if (!r.ok) throw new Error(`Envoy admin ${p}: ${r.status} ${await r.text()}`);
    return r.json();
  };
  const stats = async () => {
    const body = (await adminJson('/stats?format=json')) as { stats: { name?: string; value?: number }[] };
    return new Map(body.stats.filter((s) => s.name !== undefined && typeof s.value === 'number').map((s) => [s.name!, s.value!]));
  };
  return {
    adminUrl,
    process: child,
    adminJson,
    stats,
    stat: async (name) => (await stats()).get(name) ?? 0,
    async stop() {
      await child.stop('SIGTERM');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
