import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { TypeUrl } from '../../src/xds/resources.js';
import { inferplane, ROOT, type Child } from '../support/processes.js';
import { RecordingXdsClient } from '../support/xds-client.js';
import { eventually } from '../support/harness.js';
import { OFF_THREAD_BYTES } from '../../src/sources/file/endpoints-file.js';

interface Stage {
  /** Stands for the stage's WORKDIR. */
  dir: string;
  workdir: string;
  env: Record<string, string>;
}

/**
 * Builds the production package by carrying out the Dockerfile's own instructions, with directories standing in
 * for images: each stage gets a directory, RUN runs there (bash) except Debian package installs (returned),
 * COPY copies from the repository or from an earlier stage, ENV is kept for the run. Anything else the Dockerfile
 * may say is refused, so a new instruction cannot slip past this test. Returns the final stage (what the image
 * would hold), its entry point and the Debian packages installed.
 */
function buildLikeTheDockerfile(work: string): { stage: Stage; entrypoint: string[]; systemPackages: string[] } {
  const lines = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8').split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
  const stages = new Map<string, Stage>();
  let current: Stage | undefined;
  let entrypoint: string[] = [];
  const systemPackages: string[] = [];
  for (const line of lines) {
    const [instr, ...rest] = line.trim().split(/\s+/);
    const arg = line.trim().slice(instr!.length).trim();
    switch (instr) {
      case 'FROM': {
        current = { dir: path.join(work, `stage-${stages.size}`), workdir: '/', env: {} };
        fs.mkdirSync(current.dir);
        const as = /\bAS\s+(\S+)/i.exec(arg);
        stages.set(as ? as[1]! : `stage-${stages.size}`, current);
        break;
      }
      case 'WORKDIR':
        current!.workdir = arg;
        break;
      case 'USER': case 'EXPOSE': case 'CMD':
        break; // the user, ports and default command do not change what is built
      case 'ENV': {
        const [k, v] = arg.split('=');
        current!.env[k!] = v!;
        break;
      }
      case 'COPY': {
        const from = rest[0]!.startsWith('--from=') ? stages.get(rest.shift()!.slice('--from='.length)) : undefined;
        const dest = path.join(current!.dir, rest.pop()!);
        for (const src of rest) {
          const source = from ? path.join(from.dir, path.relative(from.workdir, path.resolve(from.workdir, src))) : path.join(ROOT, src);
          const target = rest.length > 1 || fs.statSync(source).isFile() ? path.join(dest, path.basename(src)) : dest;
          fs.cpSync(source, target, { recursive: true, verbatimSymlinks: true });
        }
        break;
      }
      case 'RUN': {
        // System packages go into the image's root file system, which a directory cannot stand in for (and
        // installing them needs root and Debian's archive): they are recorded, and checked by the caller.
        const apt = /^apt-get update && apt-get install -y --no-install-recommends ([\w.+\- ]+?) && rm -rf \/var\/lib\/apt\/lists\/\*$/.exec(arg);
        if (apt) systemPackages.push(...apt[1]!.split(' '));
        else execFileSync('bash', ['-c', arg], { cwd: current!.dir, stdio: 'pipe', env: { ...process.env, ...current!.env } });
        break;
      }
      case 'ENTRYPOINT':
        entrypoint = JSON.parse(arg) as string[];
        break;
      default:
        throw new Error(`Dockerfile: this test does not know the instruction ${instr}`);
    }
  }
  return { stage: current!, entrypoint, systemPackages };
}

describe('the production package, built the way the Dockerfile builds it (npm ci, build, prune dev dependencies)', function () {
  this.timeout(240_000);
  let work: string;
  let pkg: Stage;
  let systemPackages: string[];
  const children: Child[] = [];

  before(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-image-'));
    const built = buildLikeTheDockerfile(work);
    pkg = built.stage;
    expect(built.entrypoint).to.deep.equal(['node', 'dist/src/main.js']);
    systemPackages = built.systemPackages;
  });

  after(async () => {
    await Promise.all(children.map((c) => c.stop('SIGKILL')));
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('adds one system package, jemalloc, and runs on it: LD_PRELOAD names the library Debian\'s libjemalloc2 installs', () => {
    expect(systemPackages).to.deep.equal(['libjemalloc2']);
    expect(pkg.env['LD_PRELOAD']).to.equal('libjemalloc.so.2');
    // Decay settings jemalloc understands: returning freed pages after a second is the point of the change.
    expect(pkg.env['MALLOC_CONF']).to.match(/^background_thread:true,dirty_decay_ms:\d+,muzzy_decay_ms:0$/);
  });

  it('holds no dev dependency (no grpc-js-xds, TypeScript, tsx or mocha)', () => {
    for (const dev of ['@grpc/grpc-js-xds', 'typescript', 'tsx', 'mocha']) expect(fs.existsSync(path.join(pkg.dir, 'node_modules', dev)), dev).to.equal(false);
  });

  it('starts serve from dist/: /readyz is 200, the status page and prom-client\'s metrics are served, and an xDS client gets the clusters', async () => {
    const env = { ...process.env, ...pkg.env };
    const serve = inferplane(['serve', '--xds-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0'], { packageDir: pkg.dir, env });
    children.push(serve);
    const line = await serve.logLine('inferplane serving');
    expect((await fetch(`http://${line['admin']}/readyz`)).status).to.equal(200);
    expect(await (await fetch(`http://${line['admin']}/`)).text()).to.contain('<title>inferplane status</title>');
    expect(await (await fetch(`http://${line['admin']}/metrics`)).text()).to.contain('inferplane_xds_push_latency_seconds').and.contain('nodejs_eventloop_lag_seconds');
    const client = new RecordingXdsClient(line['xds'].replace('0.0.0.0', '127.0.0.1'), 'sotw');
    try {
      client.send({ node: { id: 'production-build-test' }, type_url: TypeUrl.Cluster });
      const r = await client.next((x) => x.typeUrl === TypeUrl.Cluster);
      expect(r.resources.map((c) => c.name)).to.deep.equal(['llama-70b/http', 'llama-8b/http']);
    } finally {
      client.close();
    }
    expect(await serve.stop()).to.equal(0);
  });

  it('serves a large endpoints file from dist/, parsed on its worker thread: ready once it is published, with every cluster', async () => {
    const file = path.join(work, 'large-endpoints.yaml');
    const services = 400;
    fs.writeFileSync(file, `services:\n${Array.from({ length: services }, (_, s) => `  - name: m${String(s).padStart(3, '0')}\n    endpoints:\n${Array.from({ length: 6 }, (_, e) => `      - { address: 10.1.${s & 255}.${e + 1}, port: 8000, zone: zone-${e % 3} }`).join('\n')}`).join('\n')}\n`);
    expect(fs.statSync(file).size).to.be.greaterThan(OFF_THREAD_BYTES);
    const serve = inferplane(['serve', '--endpoints', file, '--xds-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0'], { packageDir: pkg.dir, env: { ...process.env, ...pkg.env } });
    children.push(serve);
    const line = await serve.logLine('inferplane serving');
    await eventually(async () => (await fetch(`http://${line['admin']}/readyz`)).status === 200, 'ready once the large file is published', 30_000);
    const client = new RecordingXdsClient(line['xds'].replace('0.0.0.0', '127.0.0.1'), 'sotw');
    try {
      client.send({ node: { id: 'production-build-large' }, type_url: TypeUrl.Cluster });
      const r = await client.next((x) => x.typeUrl === TypeUrl.Cluster);
      expect(r.resources).to.have.length(services);
    } finally {
      client.close();
    }
    expect(await serve.stop()).to.equal(0);
  });

  it('starts sim-vllm from dist/, which answers a completion', async () => {
    const sim = inferplane(['sim-vllm', '--host', '127.0.0.1', '--port', '0', '--model', 'tiny'], { packageDir: pkg.dir, env: { ...process.env, ...pkg.env } });
    children.push(sim);
    const line = await sim.logLine('vLLM simulator serving (a test and demo tool: no model runs)');
    const r = await fetch(`http://${line['address']}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: 'tiny', prompt: 'hi', max_tokens: 2 }) });
    expect(r.status).to.equal(200);
    expect(((await r.json()) as any).choices[0].text).to.equal('token0 token1');
    expect(await sim.stop()).to.equal(0);
  });
});
