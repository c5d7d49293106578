import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { envoyVersion, startEnvoy, type RunningEnvoy } from '../support/envoy.js';
import { eventually } from '../support/harness.js';
import { freePort, inferplane, type Child } from '../support/processes.js';
import { completion, fileService, startTestSim, writeEndpointsFile, type TestSim } from '../support/traffic.js';

/** Sends `n` completions, `concurrency` at a time; returns each one's latency (ms), failing on any error. */
async function send(url: string, n: number, concurrency: number, model: string): Promise<number[]> {
  const latencies: number[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      next++;
      const t = performance.now();
      const r = await completion(url, { headers: { 'x-model': model }, maxTokens: 2 });
      if (!r.ok) throw new Error(`request failed: ${r.status ?? ''} ${r.error}`);
      latencies.push(performance.now() - t);
    }
  }));
  return latencies;
}

describe(`canary and shadow between model versions through real Envoy ${envoyVersion()} (front-proxy.yaml)`, function () {
  this.timeout(90_000);
  let dir: string;
  let file: string;
  let primary: TestSim;
  let canary: TestSim;
  let shadow: TestSim;
  let listenerPort: number;
  let cp: Child;
  let envoy: RunningEnvoy;
  let url: string;

  const write = (settings: Record<string, unknown>) => writeEndpointsFile(file, {
    listener: { name: 'ingress', address: '127.0.0.1', port: listenerPort },
    services: [
      fileService('llama-v1', [{ port: primary.port }], { settings: { retries: { attempts: 0 }, ...settings } }),
      fileService('llama-v2', [{ port: canary.port }]),
      fileService('llama-v3', [{ port: shadow.port }]),
    ],
  });
  const route = async () => {
    const dump = await envoy.adminJson('/config_dump?resource=dynamic_route_configs');
    return JSON.stringify(dump);
  };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-variants-'));
    file = path.join(dir, 'endpoints.yaml');
    // The shadow is slow (half a second a token): an answer of its reaching a client would show in the latency.
    [primary, canary, shadow] = await Promise.all([startTestSim(), startTestSim(), startTestSim({ slowdown: 160 })]);
    const xdsPort = await freePort();
    listenerPort = await freePort();
    write({ canary: { service: 'llama-v2', weight: 10 } });
    cp = inferplane(['serve', '--endpoints', file, '--xds-address', `127.0.0.1:${xdsPort}`, '--admin-address', '127.0.0.1:0']);
    await cp.logLine('inferplane serving');
    envoy = await startEnvoy({ bootstrap: 'front-proxy.yaml', xdsPort });
    url = `http://127.0.0.1:${listenerPort}/v1/completions`;
    await eventually(async () => (await completion(url, { headers: { 'x-model': 'llama-v1' } })).ok, 'a completion through Envoy', 20_000);
  });
  after(async () => {
    await envoy?.stop();
    await cp?.stop('SIGKILL');
    await Promise.all([primary, canary, shadow].filter(Boolean).map((s) => s.close()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('sends a 10% canary 10% ± 2% of 2,000 requests, every one answered', async () => {
    const [p0, c0] = await Promise.all([primary.started(), canary.started()]);
    await send(url, 2000, 40, 'llama-v1');
    const [p1, c1] = await Promise.all([primary.started(), canary.started()]);
    const share = (c1 - c0) / (p1 - p0 + c1 - c0);
    expect(p1 - p0 + c1 - c0).to.equal(2000);
    expect(share, `canary share ${(share * 100).toFixed(1)}%`).to.be.within(0.08, 0.12);
  });

  it('copies every request to a shadow, whose answers never reach the clients, and stops when the shadow is removed', async () => {
    write({ shadow: { service: 'llama-v3', percent: 100 } });
    await eventually(async () => (await route()).includes('request_mirror_policies'), 'Envoy has the mirror policy', 10_000);
    await eventually(async () => !(await route()).includes('weighted_clusters'), 'and no canary any more', 10_000);
    const [p0, s0] = await Promise.all([primary.started(), shadow.started()]);
    const latencies = await send(url, 200, 20, 'llama-v1');
    await eventually(async () => (await shadow.started()) - s0 >= 200, 'the shadow got a copy of each request', 20_000);
    expect((await primary.started()) - p0, 'the primary answered all').to.equal(200);
    expect(Math.max(...latencies), 'no client waited for the slow shadow (≥ 1 s an answer)').to.be.below(900);
    write({});
    await eventually(async () => !(await route()).includes('request_mirror_policies'), 'the mirror policy is gone', 10_000);
    const s1 = await shadow.started();
    await send(url, 50, 10, 'llama-v1');
    expect((await shadow.started()) - s1, 'no copies after the shadow is removed').to.equal(0);
  });

  it('keeps the last good configuration when a canary points at a missing service, and says where', async () => {
    write({ canary: { service: 'llama-v9', weight: 10 } });
    await eventually(() => cp.err().includes('services[0].settings.canary.service: no service \\"llama-v9\\" is served'), 'the file is refused with the key path', 10_000);
    const r = await completion(url, { headers: { 'x-model': 'llama-v1' } });
    expect(r.ok).to.equal(true);
  });
});
