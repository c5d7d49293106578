import type { Route } from '../generated/envoy/config/route/v3/Route.js';
import type { RouteConfiguration } from '../generated/envoy/config/route/v3/RouteConfiguration.js';
import { clusterName, proxylessName, type ListenerSpec, type RouteSpec, type Service, type TrafficSettings } from '../model/model.js';
import { TypeUrl } from '../xds/resources.js';
import { duration, typed, type ResourceSpec } from './common.js';

/**
 * The Envoy listener's route table, plus one route table per service for its proxyless API listener.
 * In the Envoy table, header-matching routes come before prefix-only ones and longer prefixes before shorter
 * (Envoy takes the first match), ties by service name, so the order is a function of content alone.
 */
export function routes(spec: ListenerSpec, services: readonly Service[]): ResourceSpec[] {
  const entries = services.flatMap((s) => s.routes.map((r) => ({ s, r })));
  entries.sort((a, b) =>
    Number(b.r.headers.length > 0) - Number(a.r.headers.length > 0) ||
    b.r.prefix.length - a.r.prefix.length ||
    (a.s.name < b.s.name ? -1 : a.s.name > b.s.name ? 1 : 0) ||
    (a.r.prefix < b.r.prefix ? -1 : a.r.prefix > b.r.prefix ? 1 : 0));
  const envoy: RouteConfiguration = {
    name: spec.name,
    virtual_hosts: [{ name: spec.name, domains: ['*'], routes: entries.map(({ s, r }) => envoyRoute(s, r)) }],
  };
  const api = services.map((s): ResourceSpec => {
    const route: Route = {
      match: { prefix: '' },
      route: {
        cluster: clusterName(s.name, s.ports[0]!.name),
        ...(s.settings.timeoutMs > 0 && { max_stream_duration: { max_stream_duration: duration(s.settings.timeoutMs) } }),
      },
    };
    const name = proxylessName(s.name);
    const value: RouteConfiguration = { name, virtual_hosts: [{ name, domains: ['*'], routes: [route] }] };
    return { typeUrl: TypeUrl.Route, name, value, wildcard: true };
  });
  return [{ typeUrl: TypeUrl.Route, name: spec.name, value: envoy, wildcard: true }, ...api];
}

function envoyRoute(s: Service, r: RouteSpec): Route {
  const st = s.settings;
  return {
    name: `${s.name}:${r.port}`,
    match: {
      prefix: r.prefix,
      ...(r.headers.length > 0 && { headers: r.headers.map(([name, exact]) => ({ name, string_match: { exact } })) }),
    },
    route: {
      cluster: clusterName(s.name, r.port),
      timeout: duration(st.timeoutMs),
      idle_timeout: duration(st.idleTimeoutMs),
      ...(st.retries.attempts > 0 && { retry_policy: retryPolicy(st) }),
    },
  };
}

/**
 * Retries pick another host (previous_hosts predicate) so a retry avoids the pod that just failed; the retry
 * budget that bounds retry storms sits on the cluster's circuit breakers.
 */
function retryPolicy(st: TrafficSettings): NonNullable<NonNullable<Route['route']>['retry_policy']> {
  const r = st.retries;
  return {
    retry_on: r.on.join(','),
    num_retries: { value: r.attempts },
    ...(r.on.includes('retriable-status-codes') && r.statusCodes.length > 0 && { retriable_status_codes: [...r.statusCodes] }),
    ...(r.perTryTimeoutMs > 0 && { per_try_timeout: duration(r.perTryTimeoutMs) }),
    ...(r.hostSelectionAttempts > 0 && {
      retry_host_predicate: [{ name: 'envoy.retry_host_predicates.previous_hosts', typed_config: typed('envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate', {}) }],
      host_selection_retry_max_attempts: String(r.hostSelectionAttempts),
    }),
  };
}
