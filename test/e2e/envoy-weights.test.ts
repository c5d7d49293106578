import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { DEFAULT_WEIGHT_OPTIONS } from '../../src/balance/weights.js';
import { envoyVersion, startEnvoy, type RunningEnvoy } from '../support/envoy.js';
import { eventually } from '../support/harness.js';
import { freePort, inferplane, type Child } from '../support/processes.js';
import { completion, fileService, startTestSim, startTraffic, writeEndpointsFile, type TestSim } from '../support/traffic.js';

const FULL = DEFAULT_WEIGHT_OPTIONS.mean;

/**
 * Load-aware weights through real Envoy: one Envoy in front of four vLLM simulators, fed by inferplane with
 * loadAwareWeights on. The other Envoys of a sidecar fleet are played by clients sending straight to one
 * simulator: that pod is busy with work this Envoy cannot see in its own counts, exactly as each sidecar sees only
 * its own requests. inferplane reads the pod's own load, lowers its weight, and Envoy sends it less.
 */
describe(`load-aware weights in Envoy ${envoyVersion()}: a pod busy with other Envoys' requests is sent less`, function () {
  this.timeout(180_000);
  let dir: string;
  let sims: TestSim[] = [];
  let cp: Child | undefined;
  let envoy: RunningEnvoy | undefined;
  let url = '';
  let admin = '';
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-weights-'));
    sims = await Promise.all([0, 1, 2, 3].map(() => startTestSim({ slowdown: 6 })));
    const [xdsPort, listenerPort] = [await freePort(), await freePort()];
    const file = path.join(dir, 'endpoints.yaml');
    writeEndpointsFile(file, {
      listener: { name: 'ingress', address: '127.0.0.1', port: listenerPort },
      services: [fileService('llm', sims.map((s) => ({ port: s.port })), { settings: { loadAwareWeights: true, retries: { attempts: 0 } } })],
    });
    cp = inferplane(['serve', '--endpoints', file, '--xds-address', `127.0.0.1:${xdsPort}`, '--admin-address', '127.0.0.1:0']);
    admin = `http://${(await cp.logLine('inferplane serving'))['admin']}`;
    envoy = await startEnvoy({ bootstrap: 'front-proxy.yaml', xdsPort, concurrency: 1 });
    url = `http://127.0.0.1:${listenerPort}/v1/completions`;
    await eventually(async () => (await completion(url, { headers: { 'x-model': 'llm' } })).ok, 'a completion through Envoy', 15_000);
  });
  after(async () => {
    await envoy?.stop();
    await cp?.stop('SIGKILL');
    await Promise.all(sims.map((s) => s.close()));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A per-host value Envoy shows on `/clusters` (`cluster::host:port::name::N`), for each simulator. */
  const perHost = async (name: string): Promise<number[]> => {
    const text = await (await fetch(`${envoy!.adminUrl}/clusters`)).text();
    return sims.map((s) => Number(new RegExp(`^llm/http::127\\.0\\.0\\.1:${s.port}::${name}::(\\d+)$`, 'm').exec(text)?.[1] ?? NaN));
  };
  const weights = () => perHost('weight');
  /** Each simulator's share of the requests Envoy itself sent over `ms`. */
  const shares = async (ms: number): Promise<number[]> => {
    const a = await perHost('rq_total');
    await new Promise((r) => setTimeout(r, ms));
    const b = await perHost('rq_total');
    const d = b.map((n, i) => n - a[i]!);
    const total = d.reduce((x, y) => x + y, 0);
    return d.map((n) => n / total);
  };

  it('keeps equal weights while the pods are alike (Envoy keeps two choices), lowers a busy pod\'s, and restores it', async () => {
    const through = startTraffic(url, { concurrency: 8, headers: { 'x-model': 'llm' }, maxTokens: 20, maxMs: 100_000 });
    try {
      await eventually(async () => (await weights()).every((w) => w === FULL), 'every endpoint at the full weight in Envoy', 15_000);
      const status = await (await fetch(`${admin}/status/weights?service=llm`)).json() as { services: Record<string, { endpoints: { endpoint: string; weight: number; why: string }[] }> };
      expect(status.services['llm']!.endpoints).to.have.length(4);
      const baseline = await shares(3_000);
      expect(baseline[0]!, JSON.stringify(baseline)).to.be.within(0.15, 0.35);
      // Other Envoys' work on the first pod: 48 requests at a time straight to it.
      const hidden = startTraffic(`http://127.0.0.1:${sims[0]!.port}/v1/completions`, { concurrency: 48, maxTokens: 40, maxMs: 100_000 });
      let before: number[] = [];
      try {
        // Halved at each publication (at most every 5 s) while the pod stays far above the others.
        await eventually(async () => (before = await weights())[0]! < FULL / 4, 'the busy pod\'s weight lowered in Envoy', 40_000);
        expect(before.slice(1), 'the others keep the full weight').to.deep.equal([FULL, FULL, FULL]);
        const explain = await (await fetch(`${admin}/status/weights?service=llm`)).json() as { services: Record<string, { endpoints: { endpoint: string; why: string }[] }> };
        expect(explain.services['llm']!.endpoints.find((e) => e.endpoint === `127.0.0.1:${sims[0]!.port}`)!.why).to.match(/above, sent less/);
        // Envoy's own picks now avoid it: a weight under a quarter of the others' gives it well under a tenth of
        // what Envoy sends (less still, as its own requests there wait longer), against a quarter before.
        const share = await shares(6_000);
        expect(share[0]!, JSON.stringify({ share, baseline, before })).to.be.lessThan(0.15);
      } finally {
        await hidden.stop();
      }
      await eventually(async () => (await weights()).every((w) => w === FULL), 'the pod back at the full weight once its load is gone', 60_000).catch(async (e: Error) => {
        throw new Error(`${e.message}: Envoy has ${JSON.stringify(await weights())}; inferplane says ${await (await fetch(`${admin}/status/weights?service=llm`)).text()}`);
      });
    } finally {
      await through.stop();
    }
  });
});
