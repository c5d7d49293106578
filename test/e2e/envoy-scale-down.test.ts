import { expect } from 'chai';
import { createMemoryLogger } from '../../src/observability/log.js';
import type { ScalerStatus } from '../../src/scaler/scaler.js';
import { serve, type Running } from '../../src/serve.js';
import { DEFAULT_LIMITS } from '../../src/xds/stream.js';
import { startApiServer, type ApiServerStandIn } from '../support/apiserver.js';
import { envoyVersion, startEnvoy, type RunningEnvoy } from '../support/envoy.js';
import { eventually } from '../support/harness.js';
import { kubeConfigFor, service, testScalerSettings } from '../support/kube.js';
import { freePort } from '../support/processes.js';
import { startDeploymentController, type DeploymentController } from '../support/replicaset.js';
import { completion, startSimPods, type SimPods } from '../support/traffic.js';

const PODS = ['127.0.0.41', '127.0.0.42', '127.0.0.43', '127.0.0.44', '127.0.0.45', '127.0.0.46'];
const BUSY = ['127.0.0.41', '127.0.0.43', '127.0.0.45'];
const CLUSTER = 'ml/llm/http';
// Short windows so the scale-down comes within seconds of the policy.
const POLICY = `
services:
  ml/llm:
    deployment: llm
    minReplicas: 3
    maxReplicas: 6
    stableWindow: 2s
    panicWindow: 1s
    scaleDownWindow: 2s
    maxSampleAge: 2s
    modes: { normal: { targetPerPod: 100, maxDownPercent: 50 } }
`;

describe(`scale-down removes the idlest pods: deletion costs set before the write (real Envoy ${envoyVersion()}, API-server stand-in with the ReplicaSet's documented victim order)`, function () {
  this.timeout(90_000);
  let api: ApiServerStandIn;
  let pods: SimPods;
  let controller: DeploymentController;
  let running: Running;
  let envoy: RunningEnvoy;
  let listenerPort: number;
  const stopLoad = new AbortController();

  before(async () => {
    api = await startApiServer();
    pods = await startSimPods(PODS);
    api.apply(service('ml', 'llm', { ports: [{ name: 'http', port: 80 }] }));
    api.apply({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'llm', namespace: 'ml' }, spec: { replicas: 6, selector: { matchLabels: { app: 'llm' } } }, status: {} });
    controller = startDeploymentController(api, { namespace: 'ml', name: 'llm', labels: { app: 'llm' }, ips: PODS, endpointSlice: { service: 'llm', port: pods.port } });
    listenerPort = await freePort();
    running = await serve({
      discovery: { kind: 'kubernetes', kubeConfig: kubeConfigFor(api.url), namespaces: ['ml'], serviceSelector: 'inferplane.io/serve=true', listener: { name: 'ingress', address: '127.0.0.1', port: listenerPort }, holdOffMs: 10, maxDelayMs: 100 },
      xdsAddress: '127.0.0.1:0', adminHost: '127.0.0.1', adminPort: 0, limits: DEFAULT_LIMITS, maxMessageBytes: 1 << 20, log: createMemoryLogger(),
      scaler: testScalerSettings(api.url),
    });
    envoy = await startEnvoy({ bootstrap: 'front-proxy.yaml', xdsPort: running.xdsPort });
  });

  after(async () => {
    stopLoad.abort();
    controller?.stop();
    await envoy?.stop();
    await running?.stop(500);
    await Promise.all(pods?.sims.map((s) => s.close()) ?? []);
    await api?.close();
  });

  it('from 6 to 3: the three pods with the fewest requests in flight are the ones deleted, none of the busy ones', async () => {
    const url = `http://127.0.0.1:${listenerPort}/v1/completions`;
    const hosts = async () => {
      const body = await envoy.adminJson('/clusters?format=json');
      return ((body.cluster_statuses.find((c: any) => c.name === CLUSTER)?.host_statuses ?? []) as any[]).map((h) => h.address.socket_address.address as string).sort();
    };
    await eventually(async () => (await hosts()).length === 6, 'Envoy has the six pods', 20_000);
    await eventually(async () => (await completion(url, { headers: { 'x-model': 'llm' } })).ok, 'Envoy answers', 15_000);
    // Long generations hold requests in flight: three through Envoy (spread by least request, at most three on
    // any pod), and four more on each busy pod from clients of their own, which Envoy does not count.
    const long = { maxTokens: 5_000, stream: true, signal: stopLoad.signal };
    for (let i = 0; i < 3; i++) void completion(url, { ...long, headers: { 'x-model': 'llm' } });
    for (const ip of BUSY) for (let i = 0; i < 4; i++) void completion(`http://${ip}:${pods.port}/v1/completions`, long);
    const inFlight = async (ip: string) => {
      const text = await (await fetch(`http://${ip}:${pods.port}/metrics`)).text();
      return Number(/^vllm:num_requests_running\S* (\S+)$/m.exec(text)?.[1] ?? NaN);
    };
    await eventually(async () => (await Promise.all(PODS.map(inFlight))).reduce((a, b) => a + b, 0) === 15, 'fifteen requests running', 15_000);
    const load = new Map(await Promise.all(PODS.map(async (ip) => [ip, await inFlight(ip)] as const)));
    expect(Math.min(...BUSY.map((ip) => load.get(ip)!))).to.be.greaterThan(Math.max(...PODS.filter((ip) => !BUSY.includes(ip)).map((ip) => load.get(ip)!)));

    // The policy arrives now: Envoy reports 3 in flight, one pod's worth at 100 per pod, so down to the minimum of 3.
    api.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'scaling-policy', namespace: 'inferplane-system' }, data: { 'policy.yaml': POLICY } });
    await eventually(() => controller.deleted.length === 3, 'three pods deleted', 30_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(controller.deleted.length, 'no more than three').to.equal(3);
    expect(controller.deleted.map((d) => d.ip).sort()).to.deep.equal(PODS.filter((ip) => !BUSY.includes(ip)));
    for (const d of controller.deleted) expect(Number(d.cost), `${d.pod} (${d.ip})`).to.equal(load.get(d.ip));
    for (const p of controller.pods()) expect(Number(p.metadata.annotations?.['controller.kubernetes.io/pod-deletion-cost'])).to.equal(load.get((p['status'] as any).podIP));

    // Every cost was set before the scale write, and the decision says so.
    const calls = api.requests;
    const lastPatch = calls.findLastIndex((r) => r.startsWith('PATCH /api/v1/namespaces/ml/pods/'));
    const write = calls.findIndex((r) => r.startsWith('PUT /apis/apps/v1/namespaces/ml/deployments/llm/scale'));
    expect(calls.filter((r) => r.startsWith('PATCH /api/v1/namespaces/ml/pods/'))).to.have.length(6);
    expect(lastPatch).to.be.within(0, write);
    const decision = (running.scaler!.status() as ScalerStatus).decisions.find((d) => d.outcome === 'written');
    expect(decision).to.include({ replicas: 3, action: 'scale-down' });
    const numeric = (a: number, b: number) => a - b;
    expect(Object.values(decision!.deletionCosts!.set).sort(numeric)).to.deep.equal([...load.values()].sort(numeric));
    expect(decision!.deletionCosts!.error).to.equal(undefined);

    // Envoy is left with the busy pods.
    await eventually(async () => JSON.stringify(await hosts()) === JSON.stringify(BUSY), 'Envoy serves the three kept pods', 10_000);
  });
});
