import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { createMemoryLogger } from '../../src/observability/log.js';
import { serve, type Running } from '../../src/serve.js';
import { parseIdentityRule } from '../../src/xds/identity.js';
import { DEFAULT_LIMITS } from '../../src/xds/stream.js';
import { startApiServer, type ApiServerStandIn } from '../support/apiserver.js';
import { createTestPki, type CertFiles, type TestPki } from '../support/certs.js';
import { envoyStream, fakeFleet, report } from '../support/envoy-stats.js';
import { eventually } from '../support/harness.js';
import { testScalerSettings } from '../support/kube.js';

const CLUSTER = 'ml/llama/http';
const SERVICE_NAME = 'inferplane.inferplane-system.svc';
const POLICY = `
services:
  ml/llama:
    deployment: llama
    minReplicas: 1
    maxReplicas: 20
    modes: { normal: { targetPerPod: 10 } }
`;

describe('stats relay between replicas over mTLS with node identity (two replicas, API-server stand-in for the Lease)', function () {
  this.timeout(30_000);
  let api: ApiServerStandIn;
  let pki: TestPki;
  let dir: string;
  const replicas: Running[] = [];
  const fleets: ReturnType<typeof fakeFleet>[] = [];
  const streams: ReturnType<typeof envoyStream>[] = [];
  const rule = parseIdentityRule('uri:spiffe://inferplane.test/envoy/{id}');
  if (!rule.ok) throw new Error(rule.error);

  /** Client credentials made from files, naming the replicas' service for SNI (we dial 127.0.0.1). */
  const channel = (files: CertFiles) => ({
    credentials: grpc.credentials.createSsl(fs.readFileSync(pki.ca), fs.readFileSync(files.key), fs.readFileSync(files.cert)),
    options: { 'grpc.ssl_target_name_override': SERVICE_NAME },
  });
  const envoyCerts = new Map<string, CertFiles>();
  const envoyChannel = (node: string) => {
    if (!envoyCerts.has(node)) envoyCerts.set(node, pki.issue(node, { sans: [`URI:spiffe://inferplane.test/envoy/${node}`] }));
    return channel(envoyCerts.get(node)!);
  };
  const start = async (instance: string) => {
    const own = pki.issue(instance, { sans: [`DNS:${SERVICE_NAME}`] });
    const r = await serve({
      discovery: { kind: 'file', path: path.join(dir, 'endpoints.yaml') },
      xdsAddress: '127.0.0.1:0', adminHost: '127.0.0.1', adminPort: 0, limits: DEFAULT_LIMITS, maxMessageBytes: 1 << 20,
      log: createMemoryLogger(), instance,
      tls: { certFile: own.cert, keyFile: own.key, clientCaFile: pki.ca },
      identity: rule.value,
      scaler: testScalerSettings(api.url, { dryRun: true }),
    });
    replicas.push(r);
    return r;
  };
  const fleetStatus = async (r: Running) => (await (await fetch(`http://127.0.0.1:${r.admin.port}/status/fleet`)).json()) as any;

  before(async () => {
    api = await startApiServer();
    pki = createTestPki();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-relay-mtls-'));
    fs.writeFileSync(path.join(dir, 'endpoints.yaml'), 'services:\n  - name: ml/llama\n    endpoints: [{ address: 10.0.0.1, port: 8000 }]\n');
    api.apply({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'llama', namespace: 'ml' }, spec: { replicas: 2, selector: { matchLabels: { app: 'llama' } } }, status: { replicas: 2, readyReplicas: 2 } });
    api.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'scaling-policy', namespace: 'inferplane-system' }, data: { 'policy.yaml': POLICY } });
  });
  after(async () => {
    for (const s of streams) s.close();
    for (const f of fleets) f.close();
    for (const r of replicas) await r.stop(200);
    await api.close();
    pki.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("forwards the follower's Envoys to the leader over mTLS, and refuses a relay without a replica's certificate", async () => {
    const leader = await start('inferplane-a');
    await eventually(() => leader.scaler!.status().role === 'leader', 'the first replica leads');
    const follower = await start('inferplane-b');
    await eventually(() => follower.scaler!.status().role === 'standby' && follower.scaler!.status().leader === leader.scaler!.status().leader, 'the second stands by');
    for (const [r, prefix, load] of [[leader, 'a', 30], [follower, 'b', 12]] as const) {
      const f = fakeFleet({ size: 2, cluster: CLUSTER, everyMs: 250, prefix });
      f.connect(`127.0.0.1:${r.xdsPort}`, envoyChannel);
      f.setLoad(load);
      fleets.push(f);
    }
    await eventually(async () => (await fleetStatus(leader)).services['ml/llama']?.envoys === 4, 'the leader counts both halves');
    const fleet = await fleetStatus(leader);
    expect(fleet.services['ml/llama']).to.include({ activeRequests: 42, envoys: 4 });
    expect(fleet.reporters.find((r: any) => r.nodeId.startsWith('inferplane-relay:'))).to.include({ envoys: 2 });

    // An Envoy's certificate (same CA, valid for its own id) does not make a relay.
    const forged = envoyStream(`127.0.0.1:${leader.xdsPort}`, envoyChannel('a-0'));
    streams.push(forged);
    forged.send(report('inferplane-relay:forged', { [CLUSTER]: 500 }));
    const refused = await forged.status();
    expect(refused?.code).to.equal(grpc.status.PERMISSION_DENIED);
    expect(refused?.details).to.contain('relay "inferplane-relay:forged" did not present an inferplane replica\'s certificate');
    // Neither does a stream without any client certificate get past the handshake.
    const anonymous = envoyStream(`127.0.0.1:${leader.xdsPort}`, { credentials: grpc.credentials.createSsl(fs.readFileSync(pki.ca)), options: { 'grpc.ssl_target_name_override': SERVICE_NAME } });
    streams.push(anonymous);
    anonymous.send(report('inferplane-relay:anonymous', { [CLUSTER]: 500 }));
    expect((await anonymous.status())?.code).to.equal(grpc.status.UNAVAILABLE);
    expect((await fleetStatus(leader)).services['ml/llama']).to.include({ activeRequests: 42, envoys: 4 });
  });
});
