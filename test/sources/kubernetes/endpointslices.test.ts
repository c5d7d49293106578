import { expect } from 'chai';
import { readAnnotations } from '../../../src/sources/kubernetes/annotations.js';
import { mergeSlices, servicePorts } from '../../../src/sources/kubernetes/endpointslices.js';
import { loadAssignment } from '../../../src/translate/endpoint.js';
import { DEFAULT_SETTINGS } from '../../../src/model/model.js';
import { service, slice } from '../../support/kube.js';

const svc = service('ml', 'llama');
const cla = (endpoints: ReturnType<typeof mergeSlices>['endpoints']) =>
  loadAssignment({ name: 'ml/llama', ports: servicePorts(svc).ports, endpoints, settings: DEFAULT_SETTINGS, routes: [] }, 'http').value;
const host = (address: string, health = 'HEALTHY', port = 8000) => ({ endpoint: { address: { socket_address: { address, port_value: port } } }, health_status: health });

describe('mergeSlices → ClusterLoadAssignment', () => {
  const cases: [string, ReturnType<typeof slice>[], object, string[]][] = [
    ['one ready endpoint', [slice('ml', 'llama', 's1', [{ address: '10.0.0.1' }])],
      { cluster_name: 'ml/llama/http', endpoints: [{ locality: {}, lb_endpoints: [host('10.0.0.1')], load_balancing_weight: { value: 1 } }] }, []],
    ['missing conditions mean ready', [slice('ml', 'llama', 's1', [{ address: '10.0.0.1' }])],
      { cluster_name: 'ml/llama/http', endpoints: [{ locality: {}, lb_endpoints: [host('10.0.0.1')], load_balancing_weight: { value: 1 } }] }, []],
    ['terminating but serving drains; terminating and not serving is gone; not ready is left out',
      [slice('ml', 'llama', 's1', [{ address: '10.0.0.1', ready: false, serving: true, terminating: true }, { address: '10.0.0.2', ready: false, serving: false, terminating: true }, { address: '10.0.0.3', ready: false }])],
      { cluster_name: 'ml/llama/http', endpoints: [{ locality: {}, lb_endpoints: [host('10.0.0.1', 'DRAINING')], load_balancing_weight: { value: 1 } }] }, []],
    ['an address in two slices appears once, the ready copy winning',
      [slice('ml', 'llama', 'a', [{ address: '10.0.0.1', ready: false }]), slice('ml', 'llama', 'b', [{ address: '10.0.0.1', ready: true }, { address: '10.0.0.2' }])],
      { cluster_name: 'ml/llama/http', endpoints: [{ locality: {}, lb_endpoints: [host('10.0.0.1'), host('10.0.0.2')], load_balancing_weight: { value: 2 } }] }, []],
    ['zones become localities', [slice('ml', 'llama', 's1', [{ address: '10.0.0.2', zone: 'b' }, { address: '10.0.0.1', zone: 'a' }])],
      { cluster_name: 'ml/llama/http', endpoints: [{ locality: { zone: 'a' }, lb_endpoints: [host('10.0.0.1')], load_balancing_weight: { value: 1 } }, { locality: { zone: 'b' }, lb_endpoints: [host('10.0.0.2')], load_balancing_weight: { value: 1 } }] }, []],
    ['IPv6 slices', [slice('ml', 'llama', 's6', [{ address: 'fd00::1' }], { addressType: 'IPv6' })],
      { cluster_name: 'ml/llama/http', endpoints: [{ locality: {}, lb_endpoints: [host('fd00::1')], load_balancing_weight: { value: 1 } }] }, []],
    ['FQDN slices are rejected', [slice('ml', 'llama', 'f', [{ address: 'pod.example.com' }], { addressType: 'FQDN' })],
      { cluster_name: 'ml/llama/http', endpoints: [] }, ['EndpointSlice ml/f: addressType FQDN is not supported (only IPv4 and IPv6); skipped']],
    ['a slice with no ports', [slice('ml', 'llama', 'np', [{ address: '10.0.0.1' }], { ports: null })],
      { cluster_name: 'ml/llama/http', endpoints: [] }, ['EndpointSlice ml/np: has no ports; skipped']],
    ['an unknown port name', [slice('ml', 'llama', 'up', [{ address: '10.0.0.1' }], { ports: [{ name: 'metrics', port: 9090 }] })],
      { cluster_name: 'ml/llama/http', endpoints: [] }, ['EndpointSlice ml/up: port name "metrics" matches no port of the Service; ignored']],
    ['an invalid address', [slice('ml', 'llama', 'bad', [{ address: '10.0.0.300' }, { address: '10.0.0.4' }])],
      { cluster_name: 'ml/llama/http', endpoints: [{ locality: {}, lb_endpoints: [host('10.0.0.4')], load_balancing_weight: { value: 1 } }] }, ['EndpointSlice ml/bad: "10.0.0.300" is not a valid IPv4 address; skipped']],
    ['no slices at all', [], { cluster_name: 'ml/llama/http', endpoints: [] }, []],
  ];
  for (const [what, slices, expected, problems] of cases) {
    it(what, () => {
      const merged = mergeSlices(svc, slices);
      expect(cla(merged.endpoints)).to.deep.equal(expected);
      expect(merged.problems).to.deep.equal(problems);
    });
  }

  it('handles thousands of slices', () => {
    const many = Array.from({ length: 2000 }, (_, i) => slice('ml', 'llama', `s${i}`, [{ address: `10.${i >> 8}.${i & 255}.1` }, { address: `10.${i >> 8}.${i & 255}.2`, ready: false }]));
    const merged = mergeSlices(svc, many);
    expect(merged.endpoints.filter((e) => e.ready)).to.have.length(2000);
    expect(merged.problems).to.deep.equal([]);
  });

  it('names an unnamed single port after its number and reads h2c/grpc appProtocol as HTTP/2', () => {
    expect(servicePorts(service('ml', 'x', { ports: [{ port: 8000 }] })).ports).to.deep.equal([{ name: 'port-8000', protocol: 'http1' }]);
    expect(servicePorts(service('ml', 'x', { ports: [{ name: 'g', port: 1, appProtocol: 'kubernetes.io/h2c' }, { name: 'u', port: 2, protocol: 'UDP' }] })).ports).to.deep.equal([{ name: 'g', protocol: 'http2' }]);
  });
});

describe('readAnnotations', () => {
  it('reads settings and routes from inferplane.io annotations', () => {
    const r = readAnnotations({ 'inferplane.io/timeout': '30s', 'inferplane.io/retries': '1', 'inferplane.io/retry-on': 'connect-failure, reset', 'inferplane.io/outlier-detection': '{consecutive5xx: 3}', 'inferplane.io/routes': '[{prefix: /v1, headers: {x-tier: large}}]', 'other.io/x': 'ignored' }, 'ml/llama', ['http']);
    if ('problems' in r) throw new Error(JSON.stringify(r.problems));
    expect(r.settings.timeoutMs).to.equal(30_000);
    expect(r.settings.retries.attempts).to.equal(1);
    expect(r.settings.retries.on).to.deep.equal(['connect-failure', 'reset']);
    expect(r.settings.outlierDetection?.consecutive5xx).to.equal(3);
    expect(r.routes).to.deep.equal([{ prefix: '/v1', headers: [['x-tier', 'large']], port: 'http' }]);
  });

  it('defaults to routing by x-model: <name>', () => {
    const r = readAnnotations(undefined, 'ml/llama', ['http']);
    expect('routes' in r && r.routes).to.deep.equal([{ prefix: '/', headers: [['x-model', 'llama']], port: 'http' }]);
  });

  const bad: [Record<string, string>, string][] = [
    [{ 'inferplane.io/timeout': 'soon' }, 'inferplane.io/timeout: timeout: "soon" is not a duration'],
    [{ 'inferplane.io/retries': 'two' }, 'inferplane.io/retries: "two" is not a whole number'],
    [{ 'inferplane.io/max-requests': '0' }, 'inferplane.io/max-requests: circuitBreakers.maxRequests: 0 is out of range'],
    [{ 'inferplane.io/timout': '5s' }, 'inferplane.io/timout: unknown annotation'],
    [{ 'inferplane.io/health-check': '[1, 2]' }, 'inferplane.io/health-check: expected true, false or a mapping'],
    [{ 'inferplane.io/routes': '[{prefix: v1}]' }, 'inferplane.io/routes: [0].prefix: "v1" is not a valid path prefix'],
    [{ 'inferplane.io/routes': '[{port: grpc}]' }, 'inferplane.io/routes: [0].port: no port named "grpc"'],
  ];
  for (const [annotations, message] of bad) {
    it(`rejects ${JSON.stringify(annotations)}, naming the annotation`, () => {
      const r = readAnnotations(annotations, 'ml/llama', ['http']);
      expect('problems' in r).to.equal(true);
      if ('problems' in r) {
        const found = r.problems.map((p) => `${p.annotation}: ${p.message}`);
        expect(found.some((f) => f.startsWith(message)), JSON.stringify(found)).to.equal(true);
      }
    });
  }
});
