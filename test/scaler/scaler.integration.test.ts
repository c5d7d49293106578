import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { createMemoryLogger } from '../../src/observability/log.js';
import type { DecisionRecord, ScalerStatus } from '../../src/scaler/scaler.js';
import { serve, type Running } from '../../src/serve.js';
import { accessCalls } from '../../src/sources/kubernetes/access.js';
import { DEFAULT_LIMITS } from '../../src/xds/stream.js';
import { startApiServer, type ApiServerStandIn } from '../support/apiserver.js';
import * as grpc from '@grpc/grpc-js';
import { envoyStream, fakeFleet, report } from '../support/envoy-stats.js';
import { eventually } from '../support/harness.js';
import { callOf, testScalerSettings } from '../support/kube.js';
import { startDeploymentController, type DeploymentController } from '../support/replicaset.js';

// Short windows so the whole life of a surge fits in seconds; the shapes are those of the defaults.
const POLICY = `
defaults:
  stableWindow: 3s
  panicWindow: 1s
  scaleDownWindow: 3s
  maxSampleAge: 2s
  modeThresholds: { surge: 100, emergency: 200 }
services:
  ml/llama:
    deployment: llama
    minReplicas: 1
    maxReplicas: 20
    externalChangeCoolOff: 2s
    modes: { normal: { targetPerPod: 10, maxUpPods: 4, maxDownPercent: 50 } }
`;
const CLUSTER = 'ml/llama/http';

const deployment = (replicas: number, ready = replicas) => ({
  apiVersion: 'apps/v1', kind: 'Deployment',
  metadata: { name: 'llama', namespace: 'ml' },
  spec: { replicas, selector: { matchLabels: { app: 'llama' } } },
  status: { replicas, readyReplicas: ready },
});
const policyMap = (text: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'scaling-policy', namespace: 'inferplane-system' }, data: { 'policy.yaml': text } });
const specReplicas = (api: ApiServerStandIn) => (api.get('deployments', 'ml', 'llama')?.['spec'] as { replicas: number } | undefined)?.replicas;

describe('scaler, end to end against the API-server stand-in (fake Envoy fleet on the real MetricsService)', function () {
  this.timeout(30_000);
  let api: ApiServerStandIn;
  let dir: string;
  let controller: DeploymentController;
  const replicas: Running[] = [];
  const fleets: ReturnType<typeof fakeFleet>[] = [];

  /** One inferplane replica with the scaler on (file discovery serves ml/llama; the rest is Kubernetes). */
  const start = async (instance: string, o: { dryRun?: boolean } = {}) => {
    const r = await serve({
      discovery: { kind: 'file', path: path.join(dir, 'endpoints.yaml') },
      xdsAddress: '127.0.0.1:0', adminHost: '127.0.0.1', adminPort: 0, limits: DEFAULT_LIMITS, maxMessageBytes: 1 << 20,
      log: createMemoryLogger(), instance,
      scaler: testScalerSettings(api.url, { dryRun: o.dryRun ?? false }),
    });
    replicas.push(r);
    return r;
  };
  const fleetFor = (r: Running, size = 4) => {
    const f = fakeFleet({ size, cluster: CLUSTER, everyMs: 250 });
    f.connect(`127.0.0.1:${r.xdsPort}`);
    fleets.push(f);
    return f;
  };
  const status = (r: Running): ScalerStatus => r.scaler!.status();
  /**
   * The Deployment is at n and the scaler `r` knows it: the stand-in applies a write before the scaler has its
   * answer, so the Deployment alone can run ahead of the scaler's record of the write.
   */
  const at = (r: Running, n: number) => specReplicas(api) === n && status(r).services['ml/llama']?.current === n;
  const written = (r: Running): DecisionRecord[] => status(r).decisions.filter((d) => d.outcome === 'written').reverse();

  before(async () => {
    api = await startApiServer();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-scaler-'));
    fs.writeFileSync(path.join(dir, 'endpoints.yaml'), 'services:\n  - name: ml/llama\n    endpoints: [{ address: 10.0.0.1, port: 8000 }]\n');
    api.apply(deployment(2));
    api.apply(policyMap(POLICY));
    // Pods ready at once; on scale-down the ReplicaSet's own choice of pods (they have no metrics here, so the
    // scaler sets every deletion cost to 0 before writing, and the newest go first).
    controller = startDeploymentController(api, { namespace: 'ml', name: 'llama', labels: { app: 'llama' }, ips: Array.from({ length: 30 }, (_, i) => `10.1.0.${i + 1}`) });
  });
  after(async () => {
    controller.stop();
    for (const f of fleets) f.close();
    for (const r of replicas) await r.stop(200);
    await api.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('load up: the Deployment\'s scale is updated within 2 s of the surge', async () => {
    const first = await start('inferplane-a');
    await eventually(() => status(first).role === 'leader' && status(first).policy.version !== null, 'leader with a policy');
    const fleet = fleetFor(first);
    fleet.setLoad(15); // 2 pods at 10 per pod: within reach of 2, nothing to do
    await eventually(() => status(first).services['ml/llama']?.last?.inputs?.envoys === 4, 'the fleet is seen');
    expect(specReplicas(api)).to.equal(2);
    const surgeAt = Date.now();
    fleet.setLoad(60);
    await eventually(() => (specReplicas(api) ?? 0) > 2, 'scaled up', 2_000);
    const took = Date.now() - surgeAt;
    expect(took).to.be.below(2_000);
    await eventually(() => at(first, 6), 'at 60 / 10 = 6 pods');
    const ups = written(first);
    expect(ups.every((d) => d.action === 'scale-up' && (d.reason === 'scale-up' || d.reason === 'panic-scale-up'))).to.equal(true);
    expect(ups[0]!.inputs!.envoys).to.equal(4);
    // Every step within the policy's bound: +max(4 pods, 100%).
    let from = 2;
    for (const d of ups) {
      expect(d.replicas! - from).to.be.at.most(Math.max(4, from));
      from = d.replicas!;
    }
  });

  it('load down: waits out the scale-down window, then steps down by at most 50% per decision', async () => {
    const first = replicas[0]!;
    await eventually(() => status(first).services['ml/llama']?.last?.reason === 'within-tolerance' || status(first).services['ml/llama']?.last?.reason === 'capacity-on-the-way', 'settled at 6');
    const before = written(first).length;
    const dropAt = Date.now();
    fleets[0]!.setLoad(5);
    await eventually(() => at(first, 1), 'down to 1', 15_000);
    const downs = written(first).slice(before);
    expect(downs.length).to.be.at.least(2);
    expect(Date.parse(downs[0]!.at) - dropAt, 'no step down before the window').to.be.at.least(3_000 - 300);
    let from = 6;
    for (const d of downs) {
      expect(d.reason).to.equal('scale-down');
      expect(d.replicas!).to.be.at.least(Math.min(from - 1, Math.floor(from * 0.5)));
      from = d.replicas!;
    }
    const held = status(first).decisions.filter((d) => Date.parse(d.at) > dropAt && Date.parse(d.at) < Date.parse(downs[0]!.at));
    expect(held.length).to.be.above(5);
    expect(held.every((d) => d.action === 'hold'), JSON.stringify(held.map((d) => d.reason))).to.equal(true);
  });

  it('a person\'s change of replicas is respected for the cool-off, then the scaler resumes', async () => {
    const first = replicas[0]!;
    fleets[0]!.setLoad(30);
    await eventually(() => at(first, 3), 'at 3 for 30 in flight');
    const d = api.get('deployments', 'ml', 'llama')!;
    const humanAt = Date.now();
    api.apply({ ...d, spec: { ...(d['spec'] as object), replicas: 9 } });
    await eventually(() => status(first).services['ml/llama']?.last?.reason === 'external-change', 'the change is seen');
    expect(specReplicas(api)).to.equal(9);
    await eventually(() => specReplicas(api) !== 9, 'resumed after the cool-off', 10_000);
    expect(Date.now() - humanAt).to.be.at.least(2_000);
    expect(status(first).services['ml/llama']!.externalChangeAt).to.not.equal(null);
  });

  it('retries a 409 with a fresh read, and reports other API errors without writing anything else', async () => {
    const first = replicas[0]!;
    await eventually(() => specReplicas(api) === 3 && status(first).services['ml/llama']?.last?.outcome === 'unchanged', 'settled at 3');
    api.failNext(/\/deployments\/llama\/scale/, 2, 409);
    fleets[0]!.setLoad(50);
    await eventually(() => at(first, 5), 'written on the third attempt');
    expect(await (await fetch(`http://127.0.0.1:${first.admin.port}/metrics`)).text()).to.contain('inferplane_scaler_scale_requests_total{outcome="conflict",service="ml/llama"} 2');
    api.failNext(/\/deployments\/llama\/scale/, 1, 500);
    fleets[0]!.setLoad(70);
    await eventually(() => status(first).decisions.some((d) => d.outcome === 'error'), 'the 500 is reported');
    const e = status(first).decisions.find((d) => d.outcome === 'error')!;
    expect(e).to.include({ reason: 'api-error', action: 'scale-up' });
    expect(e.error).to.match(/^scaling Deployment ml\/llama to \d+: HTTP 500/);
    await eventually(() => at(first, 7), 'written on the next round');
  });

  it('a deleted Deployment holds with a clear reason, and a recreated one is scaled again', async () => {
    const first = replicas[0]!;
    api.remove('deployments', 'ml', 'llama');
    await eventually(() => status(first).services['ml/llama']?.last?.reason === 'deployment-missing', 'missing is reported');
    expect(status(first).services['ml/llama']!.last!.error).to.equal('reading Deployment ml/llama: HTTP 404: deployments "llama" not found');
    api.apply(deployment(1));
    await eventually(() => at(first, 7), 'scaled again');
  });

  it('a bad ConfigMap edit keeps the last good policy in force and creates an Event on the ConfigMap', async () => {
    const first = replicas[0]!;
    const good = status(first).policy.version;
    api.apply(policyMap(POLICY.replace('minReplicas: 1', 'minReplicas: 30')));
    await eventually(() => api.list('events').some((e: any) => e.reason === 'InvalidScalingPolicy'), 'an Event');
    const ev = api.list('events').find((e: any) => e.reason === 'InvalidScalingPolicy') as any;
    expect(ev.involvedObject).to.include({ kind: 'ConfigMap', namespace: 'inferplane-system', name: 'scaling-policy' });
    expect(ev.type).to.equal('Warning');
    expect(ev.message).to.contain('services.ml/llama.minReplicas: minReplicas 30 is above maxReplicas 20');
    const p = status(first).policy;
    expect(p.version).to.equal(good);
    expect(p.rejected!.problems[0]).to.contain('minReplicas 30 is above maxReplicas 20');
    expect(await (await fetch(`http://127.0.0.1:${first.admin.port}/metrics`)).text()).to.match(/inferplane_scaler_policy_valid 0\n/);
    fleets[0]!.setLoad(80);
    await eventually(() => at(first, 8), 'still scaling by the good policy');
    // A good edit is applied live.
    api.apply(policyMap(POLICY.replace('maxReplicas: 20', 'maxReplicas: 6')));
    await eventually(() => at(first, 6), 'the new maximum applies');
    expect(status(first).policy.rejected).to.equal(null);
  });

  it('a second replica stands by while the first holds the Lease, and takes over when it stops', async () => {
    const [first] = replicas;
    // The same host name as the first (two processes on one machine): each process's Lease identity is unique.
    const second = await start('inferplane-a');
    const firstId = status(first!).leader!;
    const secondFleet = fleetFor(second);
    secondFleet.setLoad(40);
    await eventually(() => status(second).policy.version !== null && status(second).leader === firstId, 'second sees the leader');
    expect(firstId).to.match(/^inferplane-a_[0-9a-f]{8}$/);
    await new Promise((r) => setTimeout(r, 500));
    expect(status(second).role).to.equal('standby');
    expect(status(second).decisions).to.deep.equal([]);
    expect(status(first!).role).to.equal('leader');
    // Each half of the fleet reports to a different replica; the follower forwards its half's sums.
    await eventually(() => status(first!).services['ml/llama']?.last?.inputs?.envoys === 8, 'the leader counts both halves');
    const fleet = await (await fetch(`http://127.0.0.1:${first!.admin.port}/status/fleet`)).json() as any;
    expect(fleet.services['ml/llama']).to.include({ activeRequests: 80 + 40, envoys: 8 });
    expect(fleet.reporters.find((r: any) => r.nodeId.startsWith('inferplane-relay:inferplane-a_'))).to.include({ envoys: 4 });
    // The leader's own Envoys are sent away (their stats streams closed) before it lets the Lease go, so the next
    // leader never decides on the half of the fleet that reported to it.
    const probe = envoyStream(`127.0.0.1:${first!.xdsPort}`);
    probe.send(report('probe-envoy', { [CLUSTER]: 0 }));
    await eventually(async () => ((await (await fetch(`http://127.0.0.1:${first!.admin.port}/status/fleet`)).json()) as any).reporters.some((r: any) => r.nodeId === 'probe-envoy'), 'the probe reports');
    const holderWhenClosed = probe.status().then((e) => ({ code: e?.code, holder: (api.get('leases', 'inferplane-system', 'inferplane-scaler')!['spec'] as any).holderIdentity }));
    const stoppedAt = Date.now();
    await first!.stop(200);
    expect(await holderWhenClosed).to.deep.equal({ code: grpc.status.UNAVAILABLE, holder: firstId });
    probe.close();
    replicas.shift();
    fleets.shift()!.close();
    // Released on stop: taken over well before the 1 s lease would have expired.
    await eventually(() => status(second).role === 'leader', 'second leads', 3_000);
    expect(Date.now() - stoppedAt).to.be.below(1_000);
    const lease = api.get('leases', 'inferplane-system', 'inferplane-scaler')!['spec'] as any;
    expect(lease.holderIdentity).to.equal(status(second).leader).and.not.equal(firstId);
    expect(lease.leaseTransitions).to.equal(1);
    // A new term waits out its own scale-down window; 40 in flight at 10 per pod is 4 pods.
    await eventually(() => at(second, 4), 'the second scales', 10_000);
    expect(written(second).length).to.be.above(0);
  });

  it('dry run: decides and reports what it would write, never writes', async () => {
    while (replicas.length > 0) await replicas.pop()!.stop(200);
    const dry = await start('inferplane-dry', { dryRun: true });
    fleetFor(dry).setLoad(100);
    await eventually(() => status(dry).decisions.filter((d) => d.outcome === 'dry-run').length >= 5, 'dry-run decisions');
    const d = status(dry).decisions[0]!;
    expect(d).to.include({ action: 'scale-up', outcome: 'dry-run' });
    expect(d.replicas).to.be.above(4);
    expect(specReplicas(api)).to.equal(4);
    expect(status(dry).dryRun).to.equal(true);
  });

  it('makes exactly the scaler calls RBAC grants (src/sources/kubernetes/access.ts)', () => {
    const made = [...new Set(api.requests.map(callOf))].sort();
    expect(made).to.deep.equal(accessCalls({ component: 'scaler' }));
  });
});
