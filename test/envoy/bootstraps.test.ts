import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import { DEFAULT_XDS_PORT } from '../../src/config/defaults.js';
import { loadEndpointsFile } from '../../src/sources/file/endpoints-file.js';
import { loadEnvoyProtos } from '../../src/xds/protos.js';
import { createTestPki } from '../support/certs.js';
import { envoyBinary, envoyVersion } from '../support/envoy.js';
import { checkProtoJson } from '../support/proto-json.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const ENVOY_DIR = path.join(import.meta.dirname, '../../envoy');
const BOOTSTRAP = 'envoy.config.bootstrap.v3.Bootstrap';
const files = fs.readdirSync(ENVOY_DIR).filter((f) => f.endsWith('.yaml')).sort();

describe('envoy/ bootstraps', () => {
  before(() => loadEnvoyProtos(['envoy/config/bootstrap/v3/bootstrap.proto', 'envoy/config/metrics/v3/metrics_service.proto', 'envoy/extensions/transport_sockets/tls/v3/tls.proto']));

  it('are there: a front proxy and a sidecar, each in plaintext and with mTLS', () => {
    expect(files).to.deep.equal(['front-proxy-mtls.yaml', 'front-proxy.yaml', 'sidecar-mtls.yaml', 'sidecar.yaml']);
  });

  for (const name of ['front-proxy', 'sidecar']) {
    it(`${name}-mtls.yaml is ${name}.yaml plus the TLS transport socket on the inferplane_xds cluster, nothing else`, () => {
      const plain = parse(fs.readFileSync(path.join(ENVOY_DIR, `${name}.yaml`), 'utf8')) as any;
      const mtls = parse(fs.readFileSync(path.join(ENVOY_DIR, `${name}-mtls.yaml`), 'utf8')) as any;
      const xds = mtls.static_resources.clusters[0];
      expect(xds.transport_socket.typed_config.common_tls_context.alpn_protocols).to.deep.equal(['h2']);
      delete xds.transport_socket;
      xds.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address = plain.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address;
      expect(mtls).to.deep.equal(plain);
    });
  }

  for (const file of files) {
    describe(file, () => {
      const doc = parse(fs.readFileSync(path.join(ENVOY_DIR, file), 'utf8')) as any;

      it("has no unknown or mistyped field for Envoy's Bootstrap proto", () => {
        expect(checkProtoJson(BOOTSTRAP, doc)).to.equal(undefined);
      });

      it('takes clusters and listeners over ADS from a static cluster that points at the xDS port', () => {
        const ads = doc.dynamic_resources.ads_config;
        expect(['GRPC', 'DELTA_GRPC']).to.include(ads.api_type);
        expect(ads.transport_api_version).to.equal('V3');
        expect(doc.dynamic_resources.cds_config).to.deep.equal({ ads: {}, resource_api_version: 'V3' });
        expect(doc.dynamic_resources.lds_config).to.deep.equal({ ads: {}, resource_api_version: 'V3' });
        const name = ads.grpc_services[0].envoy_grpc.cluster_name;
        const cluster = doc.static_resources.clusters.find((c: any) => c.name === name);
        expect(cluster, `static cluster ${name}`).to.not.equal(undefined);
        // xDS is gRPC: the cluster must speak HTTP/2.
        expect(cluster.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'].explicit_http_config).to.have.property('http2_protocol_options');
        const addr = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address;
        expect(addr.port_value).to.equal(DEFAULT_XDS_PORT);
        expect(cluster.load_assignment.cluster_name).to.equal(name);
      });

      it("streams stats to inferplane's MetricsService every second, over the same cluster as xDS", () => {
        expect(doc.stats_flush_interval).to.equal('1s');
        const sink = doc.stats_sinks.find((x: any) => x.name === 'envoy.stat_sinks.metrics_service');
        expect(sink.typed_config.transport_api_version).to.equal('V3');
        expect(sink.typed_config.grpc_service.envoy_grpc.cluster_name).to.equal(doc.dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name);
      });

      it(`passes Envoy's own check (envoy --mode validate, Envoy ${envoyVersion()})`, async function () {
        this.timeout(30_000);
        // The sidecar takes its node identity from the command line, as its header says.
        const node = doc.node ? [] : ['--service-node', 'validate-test', '--service-cluster', 'validate-test'];
        // Envoy reads the certificate files it names: the mTLS variants are checked with a test PKI in their place.
        let config = path.join(ENVOY_DIR, file);
        const text = fs.readFileSync(config, 'utf8');
        const pki = text.includes('/etc/envoy/tls/') ? createTestPki() : undefined;
        try {
          if (pki) {
            const leaf = pki.issue('tls', { sans: ['DNS:envoy'] });
            fs.renameSync(leaf.cert, path.join(pki.dir, 'tls.crt'));
            fs.renameSync(leaf.key, path.join(pki.dir, 'tls.key'));
            fs.copyFileSync(pki.ca, path.join(pki.dir, 'ca.crt'));
            config = path.join(pki.dir, file);
            fs.writeFileSync(config, text.replaceAll('/etc/envoy/tls', pki.dir));
          }
          const r = await promisify(execFile)(envoyBinary(), ['--mode', 'validate', '-c', config, ...node, '-l', 'error']).catch((e: { stdout: string; stderr: string }) => e);
          expect(r.stdout + r.stderr).to.contain(`configuration '${config}' OK`);
        } finally {
          pki?.remove();
        }
      });

      it('binds admin to localhost only', () => {
        expect(doc.admin.address.socket_address.address).to.equal('127.0.0.1');
      });
    });
  }

  it('matches the listener inferplane serves from the example endpoints file (port 10000)', () => {
    const m = loadEndpointsFile(path.join(import.meta.dirname, '../../examples/endpoints.yaml'));
    expect(m.ok && m.value.listener.port).to.equal(10000);
    expect(fs.readFileSync(path.join(ENVOY_DIR, 'sidecar.yaml'), 'utf8')).to.contain('http://127.0.0.1:10000');
  });

  const broken: [string, (d: any) => void, string][] = [
    ['a misspelt field', (d) => (d.dynamic_resources.ads_config.api_typ = 'GRPC'), 'ads_config.api_typ: no such field'],
    ['a bad enum value', (d) => (d.dynamic_resources.ads_config.api_type = 'GRPCC'), '"GRPCC" is not a value of enum ApiType'],
    ['a duration without a unit', (d) => (d.static_resources.clusters[0].connect_timeout = 1), 'connect_timeout: expected a duration'],
    ['a port that is not a number', (d) => (d.admin.address.socket_address.port_value = 'x'), 'port_value: expected a whole number'],
    ['an unknown typed config', (d) => (d.static_resources.clusters[0].typed_extension_protocol_options['x'] = { '@type': 'type.googleapis.com/no.such.Type' }), 'unknown "@type"'],
  ];
  for (const [what, mutate, message] of broken) {
    it(`catches ${what}`, () => {
      const doc = parse(fs.readFileSync(path.join(ENVOY_DIR, 'front-proxy.yaml'), 'utf8'));
      mutate(doc);
      expect(checkProtoJson(BOOTSTRAP, doc)).to.contain(message);
    });
  }
});
