import { expect } from 'chai';
import { formatPath, readModel } from '../../src/model/validate.js';
import { routes } from '../../src/translate/route.js';
import { decodeToObject, encodeStrict } from '../../src/xds/protos.js';
import { messageName, TypeUrl } from '../../src/xds/resources.js';
import { ep, svc } from '../support/builders.js';

function problems(raw: unknown): string[] {
  const r = readModel(raw);
  return r.ok ? [] : r.error.map((p) => `${formatPath(p.path)}: ${p.message}`);
}

const v1 = (settings: Record<string, unknown>) => svc('llama-v1', [ep('10.0.0.1', 8000)], { settings });
const v2 = svc('llama-v2', [ep('10.0.0.2', 8000)]);

describe('canary and shadow between model versions', () => {
  it('refuses weights out of range, a shadow over 100%, a missing or self target, and a target without the port, each at its key path', () => {
    expect(problems({ services: [v1({ canary: { service: 'llama-v2', weight: 100 } }), v2] })).to.deep.equal(['services[0].settings.canary.weight: expected a percentage above 0 and below 100, got 100']);
    expect(problems({ services: [v1({ canary: { service: 'llama-v2', weight: 0 } }), v2] })).to.deep.equal(['services[0].settings.canary.weight: expected a percentage above 0 and below 100, got 0']);
    expect(problems({ services: [v1({ shadow: { service: 'llama-v2', percent: 150 } }), v2] })).to.deep.equal(['services[0].settings.shadow.percent: expected a percentage above 0 and at most 100, got 150']);
    expect(problems({ services: [v1({ canary: { service: 'llama-v3', weight: 10 } }), v2] })).to.deep.equal(['services[0].settings.canary.service: no service "llama-v3" is served']);
    expect(problems({ services: [v1({ shadow: { service: 'llama-v1', percent: 10 } }), v2] })).to.deep.equal(['services[0].settings.shadow.service: the service itself: a shadow is another service']);
    expect(problems({ services: [v1({ canary: { weight: 10 } }), v2] })).to.deep.equal(['services[0].settings.canary.service: missing: the service to send to']);
    expect(problems({ services: [v1({ canary: { service: 'llama-v2', weight: 10, sticky: true } }), v2] })).to.deep.equal(['services[0].settings.canary.sticky: unknown field (expected one of: service, weight)']);
    const grpcOnly = svc('llama-v2', [ep('10.0.0.2', 8000)], { ports: [{ name: 'grpc', protocol: 'http2' }] });
    expect(problems({ services: [v1({ canary: { service: 'llama-v2', weight: 10 } }), grpcOnly] })).to.deep.equal(['services[0].settings.canary.service: "llama-v2" has no port "http", which llama-v1\'s routes use']);
  });

  it('routes a canary share as weighted clusters (Envoy and proxyless gRPC alike) and mirrors a shadow share on Envoy\'s routes', () => {
    const m = readModel({ services: [v1({ canary: { service: 'llama-v2', weight: 10 }, shadow: { service: 'llama-v3', percent: 2.5 } }), v2, svc('llama-v3', [ep('10.0.0.3', 8000)])] });
    if (!m.ok) throw new Error(JSON.stringify(m.error));
    const [envoy, ...api] = routes(m.value.listener, m.value.services);
    const route = (envoy!.value as any).virtual_hosts[0].routes.find((r: any) => r.name === 'llama-v1:http').route;
    expect(route.weighted_clusters).to.deep.equal({ clusters: [{ name: 'llama-v1/http', weight: { value: 90_000 } }, { name: 'llama-v2/http', weight: { value: 10_000 } }] });
    expect(route.cluster).to.equal(undefined);
    expect(route.request_mirror_policies).to.deep.equal([{ cluster: 'llama-v3/http', runtime_fraction: { default_value: { numerator: 25_000, denominator: 'MILLION' } } }]);
    const grpc = (api.find((r) => r.name === 'xds:///llama-v1' || r.name.includes('llama-v1'))!.value as any).virtual_hosts[0].routes[0].route;
    expect(grpc.weighted_clusters.clusters.map((c: any) => c.name)).to.deep.equal(['llama-v1/http', 'llama-v2/http']);
    expect(grpc.request_mirror_policies).to.equal(undefined);
    // Envoy's own protos take it: the encoded route decodes to the same weights.
    const encoded = encodeStrict(messageName(TypeUrl.Route), envoy!.value);
    if (!encoded.ok) throw new Error(encoded.error);
    const decoded = decodeToObject(messageName(TypeUrl.Route), encoded.value) as any;
    expect(decoded.virtual_hosts[0].routes.find((r: any) => r.name === 'llama-v1:http').route.weighted_clusters.clusters[1]).to.deep.include({ name: 'llama-v2/http' });
  });
});
