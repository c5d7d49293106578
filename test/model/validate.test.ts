import { expect } from 'chai';
import { DEFAULT_SETTINGS } from '../../src/model/model.js';
import { formatPath, parseDuration, readModel, validateSettings } from '../../src/model/validate.js';
import { ep, svc } from '../support/builders.js';

function problems(raw: unknown): string[] {
  const r = readModel(raw);
  return r.ok ? [] : r.error.map((p) => `${formatPath(p.path)}: ${p.message}`);
}

describe('readModel', () => {
  it('applies documented defaults', () => {
    const r = readModel({ services: [svc('llama', [ep('10.0.0.1', 8000)])] });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.value.listener).to.deep.equal({ name: 'ingress', address: '0.0.0.0', port: 10000 });
    const s = r.value.services[0]!;
    expect(s.ports).to.deep.equal([{ name: 'http', protocol: 'http1' }]);
    expect(s.settings).to.deep.equal(DEFAULT_SETTINGS);
    expect(s.routes).to.deep.equal([{ prefix: '/', headers: [['x-model', 'llama']], port: 'http' }]);
    expect(s.endpoints).to.deep.equal([{ address: '10.0.0.1', ports: { http: 8000 }, zone: '', ready: true, serving: true, terminating: false }]);
  });

  it('follows Kubernetes condition defaults: a missing ready means ready unless terminating', () => {
    const r = readModel({ services: [svc('a', [ep('10.0.0.1', 1, { terminating: true }), ep('10.0.0.2', 1, { terminating: true, serving: true }), ep('10.0.0.3', 1, { ready: false })])] });
    if (!r.ok) throw new Error('invalid');
    expect(r.value.services[0]!.endpoints.map((e) => [e.ready, e.serving, e.terminating])).to.deep.equal([[false, false, true], [false, true, true], [false, false, false]]);
  });

  it('sorts services and endpoints so equal content gives equal models', () => {
    const a = readModel({ services: [svc('b', [ep('10.0.0.2', 1), ep('10.0.0.10', 1)]), svc('a', [])] });
    const b = readModel({ services: [svc('a', []), svc('b', [ep('10.0.0.10', 1), ep('10.0.0.2', 1)])] });
    expect(a).to.deep.equal(b);
    if (a.ok) expect(a.value.services[1]!.endpoints.map((e) => e.address)).to.deep.equal(['10.0.0.2', '10.0.0.10']);
  });

  const cases: [string, unknown, string][] = [
    ['a bad address', { services: [svc('a', [ep('10.0.0.x', 80)])] }, 'services[0].endpoints[0].address: "10.0.0.x" is not an IPv4 or IPv6 address'],
    ['a port out of range', { services: [svc('a', [ep('10.0.0.1', 70000)])] }, 'services[0].endpoints[0].port: 70000 is out of range (1 to 65535)'],
    ['a duplicate service', { services: [svc('a', []), svc('a', [])] }, 'services[1].name: duplicate service name "a" (also services[0])'],
    ['a duplicate endpoint', { services: [svc('a', [ep('10.0.0.1', 80), ep('10.0.0.1', 80)])] }, 'services[0].endpoints[1].address: duplicate endpoint 10.0.0.1 with the same ports (also services[0].endpoints[0])'],
    ['an unknown field', { services: [svc('a', [], { setings: {} })] }, 'services[0].setings: unknown field'],
    ['an invalid name', { services: [svc('Llama_8B', [])] }, 'services[0].name: "Llama_8B" is not a valid service name'],
    ['a service named like the listener', { services: [svc('ingress', [])] }, `services[0].name: "ingress" is the listener's name`],
    ['a bad timeout', { services: [svc('a', [], { settings: { timeout: 'soon' } })] }, 'services[0].settings.timeout: "soon" is not a duration'],
    ['an unknown load balancing policy', { services: [svc('a', [], { settings: { loadBalancing: 'random' } })] }, 'services[0].settings.loadBalancing: "random" is not least-request or round-robin'],
    ['an unknown retry condition', { services: [svc('a', [], { settings: { retries: { on: ['5xx', 'sometimes'] } } })] }, 'services[0].settings.retries.on[1]: "sometimes" is not an Envoy retry_on condition'],
    ['zero max requests', { services: [svc('a', [], { settings: { circuitBreakers: { maxRequests: 0 } } })] }, 'services[0].settings.circuitBreakers.maxRequests: 0 is out of range'],
    ['a route to a missing port', { services: [svc('a', [], { routes: [{ prefix: '/', port: 'grpc' }] })] }, 'services[0].routes[0].port: no port named "grpc"'],
    ['the same route twice', { services: [svc('a', [], { routes: [{ prefix: '/v1' }] }), svc('b', [], { routes: [{ prefix: '/v1' }] })] }, 'services[1].routes[0]: the same match (prefix /v1, headers {}) is already routed to a'],
    ['a port given two ways', { services: [svc('a', [{ address: '10.0.0.1', port: 1, ports: { http: 1 } }])] }, 'services[0].endpoints[0]: give either port or ports, not both'],
    ['a bad protocol', { services: [svc('a', [], { ports: [{ name: 'http', protocol: 'h3' }] })] }, 'services[0].ports[0].protocol: "h3" is not a protocol'],
    ['services that are not a list', { services: { a: 1 } }, 'services: expected a list'],
    ['a zero health check interval', { services: [svc('a', [], { settings: { healthCheck: { interval: '0s' } } })] }, 'services[0].settings.healthCheck: durations and thresholds must be greater than zero'],
  ];
  for (const [what, raw, message] of cases) {
    it(`rejects ${what}, naming the field`, () => {
      const found = problems(raw);
      expect(found.some((p) => p.startsWith(message)), `expected "${message}" in ${JSON.stringify(found)}`).to.equal(true);
    });
  }

  it('reports every problem, not only the first', () => {
    expect(problems({ services: [svc('a', [ep('x', 1), ep('10.0.0.1', 0)])] })).to.have.length(2);
  });
});

describe('validateSettings', () => {
  it('turns optional blocks on with defaults and off with false', () => {
    const on = validateSettings({ outlierDetection: true, healthCheck: {}, slowStart: { window: '10s' } });
    expect(on.ok && on.value.outlierDetection).to.deep.equal({ consecutive5xx: 5, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 50 });
    expect(on.ok && on.value.healthCheck?.path).to.equal('/health');
    expect(on.ok && on.value.slowStart).to.deep.equal({ windowMs: 10_000, aggression: 1 });
    const off = validateSettings({ outlierDetection: false });
    expect(off.ok && off.value.outlierDetection).to.equal(null);
  });
});

describe('parseDuration', () => {
  for (const [text, ms] of [['500ms', 500], ['30s', 30_000], ['2m', 120_000], ['1.5s', 1500], ['1h', 3_600_000]] as const) {
    it(`reads ${text}`, () => expect(parseDuration(text)).to.deep.equal({ ok: true, value: ms }));
  }
  it('rejects a negative or unit-less string', () => {
    expect(parseDuration('-1s').ok).to.equal(false);
    expect(parseDuration('10').ok).to.equal(false);
  });
});
