import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { createMemoryLogger } from '../../src/observability/log.js';
import type { ScalerStatus } from '../../src/scaler/scaler.js';
import { serve, type Running } from '../../src/serve.js';
import { DEFAULT_LIMITS } from '../../src/xds/stream.js';
import { envoyVersion, startEnvoy, type RunningEnvoy } from '../support/envoy.js';
import { eventually } from '../support/harness.js';
import { freePort, inferplane } from '../support/processes.js';
import { completion, fileService, SIM_MODEL, startTestSim, writeEndpointsFile, type TestSim } from '../support/traffic.js';

// Short windows so a surge comes and goes within seconds; a target of 1 in flight per pod so a few streams are
// a surge (demand over ready capacity ≥ 1.5).
const POLICY = `
services:
  llama:
    deployment: llama
    minReplicas: 1
    maxReplicas: 10
    stableWindow: 2s
    panicWindow: 1s
    maxSampleAge: 2s
    modes: { normal: { targetPerPod: 1 } }
    modeThresholds: { surge: 1.5, emergency: 100 }
`;

describe(`burst playbooks flip Envoy's routes with the scaler's mode (real Envoy ${envoyVersion()})`, function () {
  this.timeout(90_000);
  let dir: string;
  let policyFile: string;
  let pods: TestSim[];
  let small: TestSim;
  let running: Running;
  let envoy: RunningEnvoy;
  let url: string;
  let admin: string;

  /** One request on the `batch` (non-critical) route: status and Retry-After. */
  const batch = async () => {
    const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-model': 'llama', 'x-priority': 'batch' }, body: JSON.stringify({ model: SIM_MODEL, prompt: 'hi', max_tokens: 2 }) });
    return { status: r.status, retryAfter: r.headers.get('retry-after'), body: await r.text() };
  };
  const core = (maxTokens = 2) => completion(url, { headers: { 'x-model': 'llama' }, maxTokens });
  const status = () => running.scaler!.status() as ScalerStatus;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-playbooks-'));
    pods = await Promise.all([startTestSim(), startTestSim()]);
    small = await startTestSim();
    const listenerPort = await freePort();
    const file = path.join(dir, 'endpoints.yaml');
    writeEndpointsFile(file, {
      listener: { name: 'ingress', address: '127.0.0.1', port: listenerPort },
      services: [
        fileService('llama', pods.map((p) => ({ port: p.port })), {
          routes: [
            { name: 'batch', prefix: '/', headers: { 'x-model': 'llama', 'x-priority': 'batch' } },
            { name: 'core', prefix: '/', headers: { 'x-model': 'llama' } },
          ],
          settings: {
            timeout: '60s',
            playbooks: {
              surge: { shed: ['batch'], retryAfter: '3s' },
              emergency: { timeout: '1s', retries: { attempts: 0 }, shed: ['batch'], retryAfter: '7s', fallback: 'llama-small' },
            },
          },
        }),
        fileService('llama-small', [{ port: small.port }]),
      ],
    });
    policyFile = path.join(dir, 'policy.yaml');
    fs.writeFileSync(policyFile, POLICY);
    running = await serve({
      discovery: { kind: 'file', path: file },
      xdsAddress: '127.0.0.1:0', adminHost: '127.0.0.1', adminPort: 0, limits: DEFAULT_LIMITS, maxMessageBytes: 1 << 20, log: createMemoryLogger(),
      // The default decision period (1 s): an operator's switch and a new policy must not wait for a round.
      scaler: { policy: { kind: 'file', path: policyFile }, dryRun: true },
    });
    admin = `http://127.0.0.1:${running.admin.port}`;
    envoy = await startEnvoy({ bootstrap: 'front-proxy.yaml', xdsPort: running.xdsPort });
    url = `http://127.0.0.1:${listenerPort}/v1/completions`;
    await eventually(async () => (await core()).ok, 'Envoy answers', 20_000);
  });

  after(async () => {
    await envoy?.stop();
    await running?.stop(200);
    await Promise.all([...(pods ?? []), ...(small ? [small] : [])].map((p) => p.close()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('an operator\'s emergency: within a second the batch route is shed (503, Retry-After), timeouts tighten and the rest goes to the fallback; auto undoes it', async () => {
    expect((await batch()).status).to.equal(200);
    const slow = await core(300); // ~3 s of tokens: fine under the normal 60 s timeout
    expect(slow.ok).to.equal(true);

    const forcedAt = performance.now();
    const res = await fetch(`${admin}/scaler/mode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ service: 'llama', mode: 'emergency' }) });
    expect(res.status).to.equal(200);
    await eventually(async () => (await batch()).status === 503, 'the batch route shed', 5_000);
    expect(performance.now() - forcedAt, 'shed within a second of the switch').to.be.below(1_000);
    const shed = await batch();
    expect(shed.retryAfter).to.equal('7');
    expect(shed.body).to.contain('emergency');

    const before = await small.finished();
    const mainBefore = await Promise.all(pods.map((p) => p.finished()));
    expect((await core()).ok).to.equal(true);
    expect(await small.finished(), 'the core route now goes to the fallback').to.equal(before + 1);
    expect(await Promise.all(pods.map((p) => p.finished()))).to.deep.equal(mainBefore);
    const t = performance.now();
    const cut = await core(300);
    expect(cut.ok).to.equal(false);
    expect(!cut.ok && cut.status).to.equal(504);
    expect(performance.now() - t, 'cut at the emergency timeout of 1 s').to.be.within(900, 2_500);

    expect(status().modes['llama']).to.include({ mode: 'emergency', reason: 'operator', until: null });
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    expect(metrics).to.contain('inferplane_playbook_mode_changes_total{mode="emergency",reason="operator",service="llama"} 1');

    const shown = inferplane(['status', 'scaler', '--admin', admin]);
    expect(await shown.exited, shown.err()).to.equal(0);
    expect(shown.out(), shown.out()).to.match(/llama +default\/llama .* emergency \(operator\)/);

    // The operator's CLI lifts it.
    const cli = inferplane(['mode', 'llama', 'auto', '--admin', admin]);
    expect(await cli.exited, cli.err()).to.equal(0);
    expect(cli.out()).to.equal('llama: back to auto; now normal\n');
    await eventually(async () => (await batch()).status === 200, 'the batch route served again', 5_000);
    expect((await core(300)).ok, 'the normal timeout again').to.equal(true);
    expect(status().modes['llama']).to.equal(undefined);
  });

  it('the scaler\'s own surge (by pressure) sheds the batch route, and serves it again a stable window after the pressure is gone', async () => {
    const stop = new AbortController();
    // Four long streams over two pods at a target of 1 each: pressure 2, a surge.
    const streams = Array.from({ length: 4 }, () => completion(url, { headers: { 'x-model': 'llama' }, maxTokens: 5_000, stream: true, signal: stop.signal }));
    try {
      await eventually(() => status().modes['llama']?.mode === 'surge', 'the scaler enters surge', 15_000);
      expect(status().modes['llama']!.reason).to.equal('scaler');
      await eventually(async () => (await batch()).status === 503, 'the batch route shed in surge', 5_000);
      expect((await batch()).retryAfter).to.equal('3');
      expect((await core()).ok, 'the core route still served, by the primary pods').to.equal(true);
    } finally {
      stop.abort();
      await Promise.all(streams);
    }
    await eventually(() => status().modes['llama'] === undefined, 'back to normal after a stable window', 15_000);
    await eventually(async () => (await batch()).status === 200, 'the batch route served again', 5_000);
  });

  it('the policy\'s mode forces it too (reason policy), and the rest of the fleet is not touched', async () => {
    const writtenAt = performance.now();
    fs.writeFileSync(policyFile, POLICY.replace('    deployment: llama\n', '    deployment: llama\n    mode: surge\n'));
    await eventually(async () => (await batch()).status === 503, 'shed', 5_000);
    expect(performance.now() - writtenAt, 'a new policy is decided on at once, not at the next round').to.be.below(1_000);
    expect(status().modes['llama']?.reason).to.equal('policy');
    expect((await completion(url, { headers: { 'x-model': 'llama-small' } })).ok).to.equal(true);
    fs.writeFileSync(policyFile, POLICY);
    await eventually(async () => (await batch()).status === 200, 'served again', 10_000);
  });
});
