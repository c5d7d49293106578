import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { createMemoryLogger } from '../../src/observability/log.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { createSnapshotCache } from '../../src/xds/cache.js';
import { createPublisher, type Publisher } from '../../src/xds/publisher.js';
import { TypeUrl } from '../../src/xds/resources.js';
import { createXdsServer, type XdsServer } from '../../src/xds/server.js';
import { createTlsSource, readTlsFiles, type TlsSource } from '../../src/xds/tls.js';
import { ep, model, svc } from '../support/builders.js';
import { createTestPki, type CertFiles, type TestPki } from '../support/certs.js';
import { RecordingXdsClient } from '../support/xds-client.js';

const NODE = { id: 'envoy-tls', cluster: 'edge' };

describe('mTLS on the xDS port (certificates made with openssl)', function () {
  this.timeout(30_000);
  let pki: TestPki;
  let server: XdsServer;
  let source: TlsSource;
  let address: string;
  let serving: CertFiles;
  let client: CertFiles;
  let publisher: Publisher;
  const log = createMemoryLogger();
  const clients: RecordingXdsClient[] = [];
  const files = () => ({ certFile: `${pki.dir}/serving.crt`, keyFile: `${pki.dir}/serving.key`, clientCaFile: pki.ca });
  const install = (c: CertFiles) => {
    fs.copyFileSync(c.cert, `${pki.dir}/serving.crt`);
    fs.copyFileSync(c.key, `${pki.dir}/serving.key`);
  };
  const connect = (c: CertFiles | null, ca = pki.ca) => {
    const creds = grpc.credentials.createSsl(fs.readFileSync(ca), c ? fs.readFileSync(c.key) : null, c ? fs.readFileSync(c.cert) : null);
    const x = new RecordingXdsClient(address, 'sotw', 'ads', creds, { 'grpc.ssl_target_name_override': 'inferplane.test', 'grpc.default_authority': 'inferplane.test' });
    clients.push(x);
    x.send({ node: NODE, type_url: TypeUrl.Cluster });
    return x;
  };
  /** The serial of the certificate the server presents to a new connection. */
  const presented = (c: CertFiles) =>
    new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: Number(address.split(':')[1]), ca: fs.readFileSync(pki.ca), cert: fs.readFileSync(c.cert), key: fs.readFileSync(c.key), servername: 'inferplane.test', ALPNProtocols: ['h2'] }, () => {
        resolve(s.getPeerCertificate().serialNumber);
        s.destroy();
      });
      s.on('error', reject);
    });
  const serial = (c: CertFiles) => new X509Certificate(fs.readFileSync(c.cert)).serialNumber;

  before(async () => {
    pki = createTestPki();
    serving = pki.issue('server-1', { sans: ['DNS:inferplane.test', 'IP:127.0.0.1'] });
    client = pki.issue('envoy', { sans: ['URI:spiffe://inferplane.test/envoy/front-proxy-1'] });
    install(serving);
    const metrics = createMetrics();
    const cache = createSnapshotCache();
    publisher = createPublisher({ cache, log, metrics });
    await publisher.publish(model([svc('a', [ep('10.0.0.1', 80)])]));
    source = createTlsSource(files(), { log, metrics, pollMs: 60_000 });
    server = createXdsServer({ cache, log, metrics, tls: source.server });
    address = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
  });
  after(async () => {
    for (const c of clients) c.close();
    source.close();
    await server.shutdown(500);
    pki.remove();
  });

  it('serves a client whose certificate chains to the client CA', async () => {
    const r = await connect(client).next();
    expect(r.resources.map((x) => x.name)).to.deep.equal(['a/http']);
  });

  for (const [what, make] of [
    ['no client certificate', () => null],
    ['a client certificate from another CA', () => pki.issue('stranger', { sans: ['DNS:stranger'], byOtherCa: true })],
  ] as const) {
    it(`refuses ${what}`, async () => {
      const s = await connect(make()).status;
      expect(grpc.status[s.code]).to.equal('UNAVAILABLE');
    });
  }

  it('takes a rotated certificate for new connections without disturbing open streams; keeps the old one when the new files are bad', async () => {
    const open = connect(client);
    await open.next();
    expect(await presented(client)).to.equal(serial(serving));
    const next = pki.issue('server-2', { sans: ['DNS:inferplane.test', 'IP:127.0.0.1'] });
    install(next);
    source.reload();
    expect(await presented(client)).to.equal(serial(next));
    // Rotated to garbage, then to a key that does not match: logged with the file, the good one stays.
    fs.writeFileSync(`${pki.dir}/serving.crt`, 'garbage');
    source.reload();
    fs.copyFileSync(next.cert, `${pki.dir}/serving.crt`);
    fs.copyFileSync(serving.key, `${pki.dir}/serving.key`);
    source.reload();
    const problems = log.lines.filter((l) => l.msg.startsWith('TLS files rejected')).map((l) => String(l.fields['problem']));
    expect(problems).to.have.length(2);
    expect(problems[0]).to.match(/serving\.crt: not a PEM certificate/);
    expect(problems[1]).to.equal(`${pki.dir}/serving.key: the key does not match the certificate ${pki.dir}/serving.crt`);
    expect(await presented(client)).to.equal(serial(next));
    // The stream opened before all this still gets updates.
    await publisher.publish(model([svc('a', [ep('10.0.0.1', 80)]), svc('b', [])]));
    expect((await open.next((r) => r.resources.length === 2, 1)).resources.map((x) => x.name)).to.deep.equal(['a/http', 'b/http']);
  });

  it('gives the stats relay credentials that another replica accepts, dialled by IP: peer named by a shared DNS name', async () => {
    const channel = source.clientChannel();
    const relay = new RecordingXdsClient(address, 'sotw', 'ads', channel.credentials, channel.options);
    clients.push(relay);
    relay.send({ node: { id: 'inferplane-relay:test' }, type_url: TypeUrl.Cluster });
    expect((await relay.next()).resources.map((r) => r.name)).to.include('a/http');
    // A server certificate of the same CA but for another service is refused by the relay.
    const other = pki.issue('other-service', { sans: ['DNS:something-else', 'IP:127.0.0.1'] });
    const otherSource = createTlsSource({ certFile: other.cert, keyFile: other.key, clientCaFile: pki.ca }, { log, metrics: createMetrics() });
    const otherServer = createXdsServer({ cache: createSnapshotCache(), log, metrics: createMetrics(), tls: otherSource.server });
    try {
      const port = await otherServer.listen('127.0.0.1:0');
      const refused = new RecordingXdsClient(`127.0.0.1:${port}`, 'sotw', 'ads', channel.credentials, channel.options);
      clients.push(refused);
      refused.send({ node: { id: 'inferplane-relay:test' }, type_url: TypeUrl.Cluster });
      expect(grpc.status[(await refused.status).code]).to.equal('UNAVAILABLE');
    } finally {
      otherSource.close();
      await otherServer.shutdown(200);
    }
  });

  it('refuses to start on an expired certificate or a key that does not match, naming the file', () => {
    const old = pki.issue('expired', { sans: ['IP:127.0.0.1'], days: -1 });
    const r = readTlsFiles({ certFile: old.cert, keyFile: old.key });
    expect(!r.ok && r.error).to.match(new RegExp(`^${old.cert}: the certificate expired at `));
    expect(() => createTlsSource({ certFile: client.cert, keyFile: serving.key }, { log, metrics: createMetrics() })).to.throw(`TLS: ${serving.key}: the key does not match the certificate ${client.cert}`);
  });
});
