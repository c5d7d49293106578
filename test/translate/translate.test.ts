import { expect } from 'chai';
import { clusters } from '../../src/translate/cluster.js';
import { endpoints, healthOf } from '../../src/translate/endpoint.js';
import { listeners } from '../../src/translate/listener.js';
import { routes } from '../../src/translate/route.js';
import { translate } from '../../src/translate/translate.js';
import { decodeToObject, encodeStrict } from '../../src/xds/protos.js';
import { messageName, TypeUrl } from '../../src/xds/resources.js';
import { ep, model, svc } from '../support/builders.js';
import { applyWeights } from '../../src/model/model.js';

const LEAST_REQUEST = 'type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest';

describe('clusters', () => {
  it('builds an EDS-over-ADS cluster with least_request (choice_count 2) first and round_robin second', () => {
    const [c] = clusters(model([svc('llama', [])]).services);
    expect(c!.name).to.equal('llama/http');
    expect(c!.wildcard).to.equal(true);
    expect(c!.value).to.deep.equal({
      name: 'llama/http',
      type: 'EDS',
      eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: 'llama/http' },
      connect_timeout: { seconds: '2' },
      load_balancing_policy: {
        policies: [
          { typed_extension_config: { name: 'envoy.load_balancing_policies.least_request', typed_config: { '@type': LEAST_REQUEST, choice_count: { value: 2 } } } },
          { typed_extension_config: { name: 'envoy.load_balancing_policies.round_robin', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin' } } },
        ],
      },
      circuit_breakers: { thresholds: [{ max_connections: { value: 100000 }, max_pending_requests: { value: 100000 }, max_requests: { value: 100000 }, retry_budget: { budget_percent: { value: 20 }, min_retry_concurrency: { value: 10 } } }] },
      typed_extension_protocol_options: {
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': { '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions', explicit_http_config: { http_protocol_options: {} } },
      },
    });
  });

  it('adds slow start, outlier detection, health checks and HTTP/2 only when asked', () => {
    const [c] = clusters(model([svc('a', [], { ports: [{ name: 'grpc', protocol: 'http2' }], settings: { slowStart: { window: '45s', aggression: 2 }, outlierDetection: true, healthCheck: { path: '/ready' } } })]).services);
    const v = c!.value as any;
    expect(v.load_balancing_policy.policies[0].typed_extension_config.typed_config.slow_start_config).to.deep.equal({ slow_start_window: { seconds: '45' }, aggression: { default_value: 2, runtime_key: 'inferplane.a/grpc.slow_start_aggression' } });
    expect(v.outlier_detection).to.deep.equal({ consecutive_5xx: { value: 5 }, interval: { seconds: '10' }, base_ejection_time: { seconds: '30' }, max_ejection_percent: { value: 50 } });
    expect(v.health_checks).to.deep.equal([{ timeout: { seconds: '1' }, interval: { seconds: '5' }, unhealthy_threshold: { value: 3 }, healthy_threshold: { value: 1 }, http_health_check: { path: '/ready', codec_client_type: 'HTTP2' } }]);
    expect(v.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'].explicit_http_config).to.deep.equal({ http2_protocol_options: {} });
  });

  it('lists round_robin alone for a service that asks for round robin (with its slow start, if any)', () => {
    const [c] = clusters(model([svc('a', [], { settings: { loadBalancing: 'round-robin', slowStart: true } })]).services);
    expect((c!.value as any).load_balancing_policy.policies).to.deep.equal([
      { typed_extension_config: { name: 'envoy.load_balancing_policies.round_robin', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin', slow_start_config: { slow_start_window: { seconds: '30' }, aggression: { default_value: 1, runtime_key: 'inferplane.a/http.slow_start_aggression' } } } } },
    ]);
    expect(encodeStrict(messageName(TypeUrl.Cluster), c!.value).ok).to.equal(true);
  });

  it('makes one cluster per port', () => {
    const cs = clusters(model([svc('a', [], { ports: [{ name: 'http' }, { name: 'metrics' }], routes: [] })]).services);
    expect(cs.map((c) => c.name)).to.deep.equal(['a/http', 'a/metrics']);
  });
});

describe('endpoints', () => {
  const cases: [string, Record<string, unknown>, 'HEALTHY' | 'DRAINING' | null][] = [
    ['ready', {}, 'HEALTHY'],
    ['not ready', { ready: false }, null],
    ['terminating and serving', { terminating: true, serving: true }, 'DRAINING'],
    ['terminating, not serving', { terminating: true, serving: false }, null],
    ['serving but not ready', { ready: false, serving: true }, null],
  ];
  for (const [what, conditions, health] of cases) {
    it(`maps an endpoint that is ${what} to ${health ?? 'left out'}`, () => {
      const e = model([svc('a', [ep('10.0.0.1', 80, conditions)])]).services[0]!.endpoints[0]!;
      expect(healthOf(e)).to.equal(health);
    });
  }

  it('groups by zone, weights every locality by its endpoint count, and keeps equal host weights', () => {
    const m = model([svc('a', [ep('10.0.0.3', 80, { zone: 'b' }), ep('10.0.0.1', 80, { zone: 'a' }), ep('10.0.0.2', 80, { zone: 'a' }), ep('10.0.0.4', 80), ep('10.0.0.5', 80, { ready: false, zone: 'c' })])]);
    const [cla] = endpoints(m.services);
    const host = (a: string) => ({ endpoint: { address: { socket_address: { address: a, port_value: 80 } } }, health_status: 'HEALTHY' });
    expect(cla!.value).to.deep.equal({
      cluster_name: 'a/http',
      endpoints: [
        { locality: {}, lb_endpoints: [host('10.0.0.4')], load_balancing_weight: { value: 1 } },
        { locality: { zone: 'a' }, lb_endpoints: [host('10.0.0.1'), host('10.0.0.2')], load_balancing_weight: { value: 2 } },
        { locality: { zone: 'b' }, lb_endpoints: [host('10.0.0.3')], load_balancing_weight: { value: 1 } },
      ],
    });
  });

  it('gives each endpoint the load-aware weight of its pod (address:port of the first port), only for a service that asks', () => {
    const weights = new Map([['10.0.0.1:80', 1000], ['10.0.0.2:80', 350], ['[fd00::1]:80', 620]]);
    const on = model([svc('a', [ep('10.0.0.1', 80), ep('10.0.0.2', 80), ep('fd00::1', 80), ep('10.0.0.9', 80)], { settings: { loadAwareWeights: true } })]);
    const [cla] = endpoints(applyWeights(on, () => weights).services);
    const lb = (cla!.value as { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { address: string } } }; load_balancing_weight?: { value: number } }[] }[] }).endpoints[0]!.lb_endpoints;
    expect(lb.map((e) => [e.endpoint.address.socket_address.address, e.load_balancing_weight?.value])).to.deep.equal([['10.0.0.1', 1000], ['10.0.0.2', 350], ['10.0.0.9', undefined], ['fd00::1', 620]]);
    expect(encodeStrict(messageName(TypeUrl.Endpoint), cla!.value).ok).to.equal(true);
    // A service that does not ask keeps equal weights (Envoy's two choices), the same object as before.
    const off = model([svc('a', [ep('10.0.0.1', 80)])]);
    expect(applyWeights(off, () => weights)).to.equal(off);
    // The same weights object gives the same service object: the endpoints-only fast path sees no change.
    expect(applyWeights(on, () => weights).services[0]).to.equal(applyWeights(on, () => weights).services[0]);
  });

  it('lists an endpoint only under the ports it serves, IPv6 included', () => {
    const m = model([svc('a', [{ address: '10.0.0.1', ports: { http: 80 } }, { address: 'fd00::1', ports: { http: 80, metrics: 9090 } }], { ports: [{ name: 'http' }, { name: 'metrics' }] })]);
    const [http, metrics] = endpoints(m.services);
    expect((http!.value as any).endpoints[0].lb_endpoints).to.have.length(2);
    expect((metrics!.value as any).endpoints[0].lb_endpoints.map((l: any) => l.endpoint.address.socket_address)).to.deep.equal([{ address: 'fd00::1', port_value: 9090 }]);
  });
});

describe('listeners', () => {
  it('builds the Envoy listener with RDS over ADS and one API listener per service, named only', () => {
    const m = model([svc('llama', [])], { port: 8080 });
    const [envoy, api] = listeners(m.listener, m.services);
    const hcm = (name: string) => ({
      '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
      stat_prefix: name,
      rds: { config_source: { ads: {}, resource_api_version: 'V3' }, route_config_name: name },
      http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
    });
    expect(envoy).to.deep.equal({
      typeUrl: TypeUrl.Listener, name: 'ingress', wildcard: true,
      value: { name: 'ingress', address: { socket_address: { address: '0.0.0.0', port_value: 8080 } }, filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: hcm('ingress') }] }] },
    });
    expect(api).to.deep.equal({ typeUrl: TypeUrl.Listener, name: 'llama', wildcard: false, value: { name: 'llama', api_listener: { api_listener: hcm('llama') } } });
  });
});

describe('routes', () => {
  it('routes with timeouts, idle timeout for streams, and retries that avoid the failed host', () => {
    const m = model([svc('llama', [], { settings: { timeout: '30s', idleTimeout: '10s', retries: { perTryTimeout: '5s' } } })]);
    const [table] = routes(m.listener, m.services);
    expect((table!.value as any).virtual_hosts[0].routes).to.deep.equal([{
      name: 'llama:http',
      match: { prefix: '/', headers: [{ name: 'x-model', string_match: { exact: 'llama' } }] },
      route: {
        cluster: 'llama/http',
        timeout: { seconds: '30' },
        idle_timeout: { seconds: '10' },
        retry_policy: {
          retry_on: 'connect-failure,refused-stream,reset,retriable-status-codes',
          num_retries: { value: 2 },
          retriable_status_codes: [503],
          per_try_timeout: { seconds: '5' },
          retry_host_predicate: [{ name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate' } }],
          host_selection_retry_max_attempts: '3',
        },
      },
    }]);
  });

  it('orders header matches first, then longer prefixes, so tiered models and catch-alls coexist', () => {
    const m = model([
      svc('small', [], { routes: [{ prefix: '/' }] }),
      svc('large', [], { routes: [{ prefix: '/', headers: { 'x-model': 'large' } }] }),
      svc('embed', [], { routes: [{ prefix: '/v1/embeddings' }] }),
    ]);
    const [table] = routes(m.listener, m.services);
    expect((table!.value as any).virtual_hosts[0].routes.map((r: any) => r.name)).to.deep.equal(['large:http', 'embed:http', 'small:http']);
  });

  it('leaves out the retry policy when retries are off, and timeouts when disabled', () => {
    const m = model([svc('a', [], { settings: { retries: { attempts: 0 }, timeout: 0, idleTimeout: 0 } })]);
    const [table, api] = routes(m.listener, m.services);
    expect((table!.value as any).virtual_hosts[0].routes[0].route).to.deep.equal({ cluster: 'a/http', timeout: {}, idle_timeout: {} });
    expect((api!.value as any).virtual_hosts[0].routes[0].route).to.deep.equal({ cluster: 'a/http' });
  });
});

/** Drops empty lists, which protobuf cannot tell from absent ones. */
function withoutEmptyLists(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutEmptyLists);
  if (v && typeof v === 'object' && !(v instanceof Uint8Array)) {
    return Object.fromEntries(Object.entries(v).filter(([, x]) => !(Array.isArray(x) && x.length === 0)).map(([k, x]) => [k, withoutEmptyLists(x)]));
  }
  return v;
}

describe('translate', () => {
  const full = model([
    svc('llama-8b', [ep('10.0.0.1', 8000, { zone: 'a' }), ep('10.0.0.2', 8000, { terminating: true, serving: true }), ep('fd00::3', 8000, { zone: 'b' })], {
      routes: [{ prefix: '/', headers: { 'x-model': 'llama-8b' } }, { prefix: '/' }],
      settings: { outlierDetection: true, healthCheck: true, slowStart: true, retries: { perTryTimeout: '20s' } },
    }),
    svc('team/llama-70b', [], { ports: [{ name: 'grpc', protocol: 'http2' }, { name: 'http' }], routes: [{ prefix: '/v2', port: 'http' }] }),
  ]);

  it('round-trips every resource through Envoy\'s protos with no unknown or mistyped field', () => {
    const all = translate(full);
    expect(all.map((r) => `${r.typeUrl.split('.').pop()}:${r.name}`)).to.deep.equal([
      'Cluster:llama-8b/http', 'Cluster:team/llama-70b/grpc', 'Cluster:team/llama-70b/http',
      'ClusterLoadAssignment:llama-8b/http', 'ClusterLoadAssignment:team/llama-70b/grpc', 'ClusterLoadAssignment:team/llama-70b/http',
      'Listener:ingress', 'Listener:llama-8b', 'Listener:llama-70b.team',
      'RouteConfiguration:ingress', 'RouteConfiguration:llama-8b', 'RouteConfiguration:llama-70b.team',
    ]);
    for (const r of all) {
      const bytes = encodeStrict(messageName(r.typeUrl), r.value);
      if (!bytes.ok) throw new Error(bytes.error);
      expect(withoutEmptyLists(decodeToObject(messageName(r.typeUrl), bytes.value)), r.name).to.deep.equal(withoutEmptyLists(r.value));
    }
  });

  it('is pure: the same model gives the same resources', () => {
    expect(translate(full)).to.deep.equal(translate(full));
  });
});

describe('encodeStrict', () => {
  it('refuses unknown fields, bad enum values, mistyped and out-of-range values, with a path', () => {
    const name = 'envoy.config.cluster.v3.Cluster';
    expect(encodeStrict(name, { name: 'a', lb_polcy: 'ROUND_ROBIN' })).to.deep.equal({ ok: false, error: `${name}.lb_polcy: no such field in ${name}` });
    expect(encodeStrict(name, { type: 'EDSS' })).to.deep.equal({ ok: false, error: `${name}.type: "EDSS" is not a value of enum DiscoveryType` });
    expect(encodeStrict(name, { name: 7 })).to.deep.equal({ ok: false, error: `${name}.name: expected a string` });
    expect(encodeStrict(name, { per_connection_buffer_limit_bytes: { value: -1 } })).to.deep.equal({ ok: false, error: `${name}.per_connection_buffer_limit_bytes.value: -1 is out of range for uint32` });
    const inAny = encodeStrict(name, { load_balancing_policy: { policies: [{ typed_extension_config: { name: 'x', typed_config: { '@type': LEAST_REQUEST, choice_cuont: 2 } } }] } });
    expect(inAny.ok ? '' : inAny.error).to.contain('<LeastRequest>.choice_cuont: no such field');
  });
});
