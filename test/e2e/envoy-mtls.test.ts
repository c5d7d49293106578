import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { expect } from 'chai';
import { createTestPki, type CertFiles, type TestPki } from '../support/certs.js';
import { envoyVersion, startEnvoy, type RunningEnvoy } from '../support/envoy.js';
import { eventually } from '../support/harness.js';
import { freePort, inferplane, type Child } from '../support/processes.js';
import { completion, fileService, startTestSim, writeEndpointsFile, type TestSim } from '../support/traffic.js';

describe(`mTLS and node identity between real Envoy ${envoyVersion()} (envoy/front-proxy-mtls.yaml) and inferplane`, function () {
  this.timeout(60_000);
  let pki: TestPki;
  let dir: string;
  let sims: TestSim[];
  let cp: Child;
  let admin: string;
  let xdsPort: number;
  let listenerPort: number;
  let file: string;
  let serving: CertFiles;
  const envoys: RunningEnvoy[] = [];
  const nodes = async () => ((await (await fetch(`${admin}/status/nodes`)).json()) as { nodes: { nodeId: string }[] }).nodes.map((n) => n.nodeId);
  const write = (n: number) => writeEndpointsFile(file, { listener: { name: 'ingress', address: '127.0.0.1', port: listenerPort }, services: [fileService('llama', sims.slice(0, n).map((s) => ({ port: s.port })))] });
  const install = (c: CertFiles) => {
    fs.copyFileSync(c.cert, path.join(dir, 'serving.crt'));
    fs.copyFileSync(c.key, path.join(dir, 'serving.key'));
  };

  before(async () => {
    pki = createTestPki();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-mtls-'));
    // The Envoy side: a mounted Secret with tls.crt, tls.key and ca.crt.
    fs.mkdirSync(path.join(dir, 'envoy'));
    const envoyCert = pki.issue('front-proxy-1', { sans: ['URI:spiffe://inferplane.test/envoy/front-proxy-1'] });
    fs.copyFileSync(envoyCert.cert, path.join(dir, 'envoy/tls.crt'));
    fs.copyFileSync(envoyCert.key, path.join(dir, 'envoy/tls.key'));
    fs.copyFileSync(pki.ca, path.join(dir, 'envoy/ca.crt'));
    serving = pki.issue('inferplane-1', { sans: ['DNS:inferplane.inferplane-system.svc', 'IP:127.0.0.1'] });
    install(serving);
    sims = await Promise.all([0, 1].map(() => startTestSim()));
    [xdsPort, listenerPort] = [await freePort(), await freePort()];
    file = path.join(dir, 'endpoints.yaml');
    write(1);
    cp = inferplane(['serve', '--endpoints', file, '--xds-address', `127.0.0.1:${xdsPort}`, '--admin-address', '127.0.0.1:0',
      '--tls-cert', path.join(dir, 'serving.crt'), '--tls-key', path.join(dir, 'serving.key'), '--tls-client-ca', pki.ca,
      '--node-identity', 'uri:spiffe://inferplane.test/envoy/{id}']);
    admin = `http://${(await cp.logLine('inferplane serving'))['admin']}`;
  });

  after(async () => {
    for (const e of envoys) await e.stop();
    await cp?.stop('SIGKILL');
    await Promise.all(sims.map((s) => s.close()));
    fs.rmSync(dir, { recursive: true, force: true });
    pki.remove();
  });

  it('configures an Envoy that presents a certificate of the trusted CA, and takes its stats over the same mTLS port', async () => {
    const envoy = await startEnvoy({ bootstrap: 'front-proxy-mtls.yaml', xdsPort, tlsDir: path.join(dir, 'envoy') });
    envoys.push(envoy);
    const url = `http://127.0.0.1:${listenerPort}/v1/completions`;
    await eventually(async () => (await completion(url, { headers: { 'x-model': 'llama' } })).ok, 'a completion through Envoy', 20_000);
    expect(await nodes()).to.include('front-proxy-1');
    await eventually(async () => ((await (await fetch(`${admin}/status/fleet`)).json()) as any).reporters.some((r: any) => r.nodeId === 'front-proxy-1'), 'stats over mTLS', 10_000);
  });

  it('refuses an Envoy without a client certificate (the plaintext bootstrap): it never gets configuration', async () => {
    const plain = await startEnvoy({ bootstrap: 'front-proxy.yaml', xdsPort, edit: (d) => (d.node.id = 'no-certificate') });
    envoys.push(plain);
    await eventually(async () => (await plain.stat('cluster.inferplane_xds.upstream_cx_destroy')) + (await plain.stat('cluster.inferplane_xds.upstream_cx_protocol_error')) > 0, 'the plaintext Envoy is turned away', 15_000);
    expect(await plain.stat('control_plane.connected_state')).to.equal(0);
    expect(await nodes()).to.not.include('no-certificate');
  });

  it('refuses an Envoy whose certificate does not prove its node id, for xDS and for stats alike', async () => {
    const impostor = await startEnvoy({ bootstrap: 'front-proxy-mtls.yaml', xdsPort, tlsDir: path.join(dir, 'envoy'), edit: (d) => (d.node.id = 'impostor') });
    envoys.push(impostor);
    const rejections = async () => (await (await fetch(`${admin}/metrics`)).text()).split('\n').filter((l) => l.startsWith('inferplane_identity_rejections_total'));
    await eventually(async () => (await rejections()).length === 2, 'xDS and stats streams refused', 15_000);
    expect(cp.err()).to.contain('node \\"impostor\\" claims an identity its certificate does not prove: URI:spiffe://inferplane.test/envoy/impostor is required');
    // Its gRPC stream opens before the first request is refused, so connected_state may read 1 for a moment
    // between retries; what matters is that no configuration ever arrived.
    expect(await impostor.stat('cluster_manager.cds.update_success'), 'never configured').to.equal(0);
    expect(await impostor.stat('listener_manager.lds.update_success'), 'never configured').to.equal(0);
    expect(await nodes()).to.not.include('impostor');
    expect(((await (await fetch(`${admin}/status/fleet`)).json()) as any).reporters.map((r: any) => r.nodeId)).to.not.include('impostor');
  });

  it('rotates its certificate without a restart: new connections get the new one, the connected Envoy keeps its stream', async () => {
    const [envoy] = envoys;
    const connections = await envoy!.stat('cluster.inferplane_xds.upstream_cx_total');
    const next = pki.issue('inferplane-2', { sans: ['DNS:inferplane.inferplane-system.svc', 'IP:127.0.0.1'] });
    install(next);
    await cp.logLine('TLS certificate reloaded', 10_000);
    const presented = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: xdsPort, ca: fs.readFileSync(pki.ca), cert: fs.readFileSync(path.join(dir, 'envoy/tls.crt')), key: fs.readFileSync(path.join(dir, 'envoy/tls.key')), servername: 'inferplane.inferplane-system.svc', ALPNProtocols: ['h2'] }, () => {
        resolve(s.getPeerCertificate().serialNumber);
        s.destroy();
      });
      s.on('error', reject);
    });
    expect(presented).to.equal(new X509Certificate(fs.readFileSync(next.cert)).serialNumber);
    // The Envoy's stream, opened under the old certificate, still carries changes.
    write(2);
    await eventually(async () => {
      const body = await envoy!.adminJson('/clusters?format=json');
      return body.cluster_statuses.find((c: any) => c.name === 'llama/http')?.host_statuses?.length === 2;
    }, 'Envoy gets the second endpoint', 10_000);
    expect(await envoy!.stat('cluster.inferplane_xds.upstream_cx_total')).to.equal(connections);
  });
});
