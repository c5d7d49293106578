import { expect } from 'chai';
import { applyPlaybooks, type Mode, type Model } from '../../src/model/model.js';
import { formatPath, readModel } from '../../src/model/validate.js';
import { readAnnotations } from '../../src/sources/kubernetes/annotations.js';
import { routes } from '../../src/translate/route.js';
import { decodeToObject, encodeStrict } from '../../src/xds/protos.js';
import { messageName, TypeUrl } from '../../src/xds/resources.js';
import { ep, svc } from '../support/builders.js';

function problems(raw: unknown): string[] {
  const r = readModel(raw);
  return r.ok ? [] : r.error.map((p) => `${formatPath(p.path)}: ${p.message}`);
}

const ROUTES = [
  { name: 'batch', prefix: '/', headers: { 'x-model': 'llama', 'x-priority': 'batch' } },
  { name: 'core', prefix: '/', headers: { 'x-model': 'llama' } },
];
const llama = (playbooks: unknown, extra: Record<string, unknown> = {}) => svc('llama', [ep('10.0.0.1', 8000)], { routes: ROUTES, settings: { timeout: '60s', playbooks, ...extra } });
const small = svc('llama-small', [ep('10.0.0.9', 8000)]);
const EMERGENCY = { timeout: '2s', retries: { attempts: 0, perTryTimeout: '1s' }, shed: ['batch'], retryAfter: '7s', fallback: 'llama-small' };

function build(raw: unknown): Model {
  const m = readModel(raw);
  if (!m.ok) throw new Error(JSON.stringify(m.error));
  return m.value;
}

/** The Envoy route table's routes for a model in the given modes. */
const envoyRoutes = (m: Model, modes: Record<string, Mode>) => {
  const applied = applyPlaybooks(m, (s) => modes[s] ?? 'normal');
  return (routes(applied.listener, applied.services)[0]!.value as any).virtual_hosts[0].routes as any[];
};

describe('burst playbooks: per mode, what the data plane does', () => {
  it('refuses a playbook naming an unknown route, a fallback that is missing, itself or portless, bad values and unknown keys, each at its key path', () => {
    expect(problems({ services: [llama({ emergency: { ...EMERGENCY, shed: ['batch', 'embeddings'] } }), small] })).to.deep.equal(['services[0].settings.playbooks.emergency.shed[1]: no route named "embeddings" in this service (named routes: batch, core)']);
    expect(problems({ services: [svc('llama', [ep('10.0.0.1', 8000)], { settings: { playbooks: { surge: { shed: ['batch'] } } } })] })).to.deep.equal(['services[0].settings.playbooks.surge.shed[0]: no route named "batch" in this service (no route has a name; give routes a name to shed them)']);
    expect(problems({ services: [llama({ emergency: { ...EMERGENCY, fallback: 'llama-tiny' } }), small] })).to.deep.equal(['services[0].settings.playbooks.emergency.fallback: no service "llama-tiny" is served']);
    expect(problems({ services: [llama({ surge: { fallback: 'llama' } }), small] })).to.deep.equal(['services[0].settings.playbooks.surge.fallback: the service itself: a fallback is another service']);
    const grpcOnly = svc('llama-small', [ep('10.0.0.9', 8000)], { ports: [{ name: 'grpc', protocol: 'http2' }] });
    expect(problems({ services: [llama({ surge: { fallback: 'llama-small' } }), grpcOnly] })).to.deep.equal(['services[0].settings.playbooks.surge.fallback: "llama-small" has no port "http", which llama\'s routes use']);
    expect(problems({ services: [llama({ panic: {} }), small] })).to.deep.equal(['services[0].settings.playbooks.panic: unknown field (expected one of: surge, emergency)']);
    expect(problems({ services: [llama({ surge: { retries: { attempts: 11 } } }), small] })).to.deep.equal(['services[0].settings.playbooks.surge.retries.attempts: 11 is out of range (0 to 10)']);
    expect(problems({ services: [llama({ surge: { retryAfter: '500ms' } }), small] })).to.deep.equal(['services[0].settings.playbooks.surge.retryAfter: Retry-After is whole seconds, at least 1s']);
    expect(problems({ services: [llama({ surge: { timeout: 'soon' } }), small] })).to.deep.equal(['services[0].settings.playbooks.surge.timeout: "soon" is not a duration such as "500ms", "30s" or "2m"']);
    expect(problems({ services: [llama({ surge: { shedAll: true } }), small] })).to.deep.equal(['services[0].settings.playbooks.surge.shedAll: unknown field (expected one of: timeout, retries, shed, retryAfter, fallback)']);
    expect(problems({ services: [svc('llama', [ep('10.0.0.1', 8000)], { routes: [{ name: 'a', prefix: '/a' }, { name: 'a', prefix: '/b' }] })] })).to.deep.equal(['services[0].routes[1].name: duplicate route name "a"']);
  });

  it('in normal mode the model is published as it is; in a mode with a playbook, timeouts and retries change, named routes are shed, the rest go to the fallback', () => {
    const m = build({ services: [llama({ emergency: EMERGENCY, surge: { shed: ['batch'] } }, { canary: { service: 'llama-small', weight: 10 } }), small] });
    expect(applyPlaybooks(m, () => 'normal')).to.equal(m);
    const normal = envoyRoutes(m, {});
    expect(normal.map((r) => r.name)).to.deep.equal(['llama:http', 'llama:http', 'llama-small:http']);
    expect(normal[0].match.headers.map((h: any) => h.name), 'the narrower match first').to.deep.equal(['x-model', 'x-priority']);
    expect(normal[1].route).to.deep.include({ timeout: { seconds: '60' } });

    const em = envoyRoutes(m, { llama: 'emergency' });
    expect(em[0]).to.deep.equal({
      name: 'llama:batch:shed',
      match: normal[0].match,
      direct_response: { status: 503, body: { inline_string: 'llama is shedding batch (emergency mode); retry after 7s\n' } },
      response_headers_to_add: [{ header: { key: 'retry-after', value: '7' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
    });
    expect(em[1].route.cluster, 'the fallback takes all (no canary split)').to.equal('llama-small/http');
    expect(em[1].route.weighted_clusters).to.equal(undefined);
    expect(em[1].route.timeout).to.deep.equal({ seconds: '2' });
    expect(em[1].route.retry_policy).to.equal(undefined);
    expect(em[2], 'other services untouched').to.deep.equal(normal[2]);

    const surge = envoyRoutes(m, { llama: 'surge' });
    expect(surge[0].direct_response.status).to.equal(503);
    expect(surge[0].response_headers_to_add[0].header.value, 'the default Retry-After').to.equal('30');
    expect(surge[1].route.weighted_clusters, 'no fallback: the canary split stays').to.not.equal(undefined);
    expect(envoyRoutes(m, { 'llama-small': 'emergency' }), 'a mode without a playbook changes nothing').to.deep.equal(normal);

    // Envoy's own protos take the shed route.
    const table = routes(applyPlaybooks(m, () => 'emergency').listener, applyPlaybooks(m, () => 'emergency').services)[0]!;
    const encoded = encodeStrict(messageName(TypeUrl.Route), table.value);
    if (!encoded.ok) throw new Error(encoded.error);
    expect((decodeToObject(messageName(TypeUrl.Route), encoded.value) as any).virtual_hosts[0].routes[0].direct_response.status).to.equal(503);
  });

  it('proxyless gRPC clients get the timeout and the fallback too', () => {
    const m = build({ services: [llama({ emergency: EMERGENCY }), small] });
    const applied = applyPlaybooks(m, () => 'emergency');
    const api = routes(applied.listener, applied.services).find((r) => r.name === 'llama')!;
    const route = (api.value as any).virtual_hosts[0].routes[0].route;
    expect(route.cluster).to.equal('llama-small/http');
    expect(route.max_stream_duration).to.deep.equal({ max_stream_duration: { seconds: '2' } });
  });

  it('keeps a service the same object across publications in the same mode, so endpoint-only changes keep their fast path', () => {
    const m = build({ services: [llama({ emergency: EMERGENCY }), small] });
    const a = applyPlaybooks(m, () => 'emergency');
    const b = applyPlaybooks(m, () => 'emergency');
    expect(a.services[0]).to.equal(b.services[0]);
    const moved = { ...m, services: [{ ...m.services[0]!, endpoints: [] }, m.services[1]!] };
    expect(applyPlaybooks(moved, () => 'emergency').services[0]!.settings, 'same settings object for new endpoints').to.equal(a.services[0]!.settings);
    expect(applyPlaybooks(m, () => 'surge').services[0]).to.equal(m.services[0]);
  });

  it('reads inferplane.io/playbooks on a Service, and refuses one naming an unknown route with the annotation named', () => {
    const annotations = { 'inferplane.io/routes': JSON.stringify(ROUTES), 'inferplane.io/playbooks': 'surge: { shed: [batch], timeout: 20s }' };
    const good = readAnnotations(annotations, 'ml/llama', ['http']);
    if (!('settings' in good)) throw new Error(JSON.stringify(good.problems));
    expect(good.settings.playbooks.surge).to.deep.equal({ timeoutMs: 20_000, retryAttempts: null, perTryTimeoutMs: null, shed: ['batch'], retryAfterSeconds: 30, fallback: null });
    const bad = readAnnotations({ ...annotations, 'inferplane.io/playbooks': 'emergency: { shed: [embeddings] }' }, 'ml/llama', ['http']);
    expect(bad).to.deep.equal({ problems: [{ annotation: 'inferplane.io/playbooks', message: 'playbooks.emergency.shed[0]: no route named "embeddings" in this service (named routes: batch, core)' }] });
  });
});
