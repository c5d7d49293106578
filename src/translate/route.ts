import type { Route } from '../generated/envoy/config/route/v3/Route.js';
import type { RouteConfiguration } from '../generated/envoy/config/route/v3/RouteConfiguration.js';
import { clusterName, proxylessName, type ListenerSpec, type RouteSpec, type Service, type TrafficSettings } from '../model/model.js';
import { TypeUrl } from '../xds/resources.js';
import { duration, typed, type ResourceSpec } from './common.js';
import { runSteps, type Steps } from '../steps.js';

/**
 * The Envoy listener's route table, plus one route table per service for its proxyless API listener.
 * In the Envoy table, header-matching routes come before prefix-only ones, longer prefixes before shorter, and
 * then more headers before fewer (Envoy takes the first match), ties by service name, so the order is a
 * function of content alone.
 */
export function routes(spec: ListenerSpec, services: readonly Service[]): ResourceSpec[] {
  return [envoyRoutes(spec, services), ...apiRoutes(services)];
}

/** The Envoy listener's route table alone (see {@link routes}). */
export function envoyRoutes(spec: ListenerSpec, services: readonly Service[]): ResourceSpec {
  return runSteps(envoyRoutesSteps(spec, services));
}

/** Routes built between two yields of {@link envoyRoutesSteps}. */
const ROUTES_PER_STEP = 100;

/** {@link envoyRoutes} as steps (see src/steps.ts): one table may route thousands of services. */
export function* envoyRoutesSteps(spec: ListenerSpec, services: readonly Service[]): Steps<ResourceSpec> {
  const entries = services.flatMap((s) => s.routes.map((r) => ({ s, r })));
  entries.sort((a, b) =>
    Number(b.r.headers.length > 0) - Number(a.r.headers.length > 0) ||
    b.r.prefix.length - a.r.prefix.length ||
    // More headers, a narrower match: `x-model: m, x-priority: batch` must come before `x-model: m`.
    b.r.headers.length - a.r.headers.length ||
    (a.s.name < b.s.name ? -1 : a.s.name > b.s.name ? 1 : 0) ||
    (a.r.prefix < b.r.prefix ? -1 : a.r.prefix > b.r.prefix ? 1 : 0));
  yield;
  const built: Route[] = [];
  for (const { s, r } of entries) {
    built.push(envoyRoute(s, r));
    if (built.length % ROUTES_PER_STEP === 0) yield;
  }
  const envoy: RouteConfiguration = { name: spec.name, virtual_hosts: [{ name: spec.name, domains: ['*'], routes: built }] };
  return { typeUrl: TypeUrl.Route, name: spec.name, value: envoy, wildcard: true };
}

/** The route tables of the proxyless API listeners alone, one per service (see {@link routes}). */
export function apiRoutes(services: readonly Service[]): ResourceSpec[] {
  return services.map((s): ResourceSpec => {
    const route: Route = {
      match: { prefix: '' },
      route: {
        // gRPC clients take weighted clusters (gRFC A28) and ignore mirroring, so only the canary applies.
        ...destination(s, s.ports[0]!.name),
        ...(s.settings.timeoutMs > 0 && { max_stream_duration: { max_stream_duration: duration(s.settings.timeoutMs) } }),
      },
    };
    const name = proxylessName(s.name);
    const value: RouteConfiguration = { name, virtual_hosts: [{ name, domains: ['*'], routes: [route] }] };
    return { typeUrl: TypeUrl.Route, name, value, wildcard: true };
  });
}

/** Weights of a canary split, in parts per this many (a percentage to three decimals). */
const WEIGHT_PARTS = 100_000;

/**
 * Where a route sends: its service's cluster, or with a canary, weighted clusters (the canary's share, the
 * primary the rest). Envoy's and proxyless gRPC's route actions take both forms alike.
 */
function destination(s: Service, port: string): { cluster: string } | { weighted_clusters: { clusters: { name: string; weight: { value: number } }[] } } {
  const fallback = s.settings.inForce?.fallback;
  if (fallback) return { cluster: clusterName(fallback, port) };
  const c = s.settings.canary;
  if (!c) return { cluster: clusterName(s.name, port) };
  const canary = Math.round((c.percent / 100) * WEIGHT_PARTS);
  return { weighted_clusters: { clusters: [{ name: clusterName(s.name, port), weight: { value: WEIGHT_PARTS - canary } }, { name: clusterName(c.service, port), weight: { value: canary } }] } };
}

function envoyRoute(s: Service, r: RouteSpec): Route {
  const st = s.settings;
  const match = {
    prefix: r.prefix,
    ...(r.headers.length > 0 && { headers: r.headers.map(([name, exact]) => ({ name, string_match: { exact } })) }),
  };
  const pb = st.inForce;
  if (pb && r.name !== undefined && pb.shed.includes(r.name)) {
    // Answered by Envoy itself: the request never reaches a pod, and the client is told when to come back.
    return {
      name: `${s.name}:${r.name}:shed`,
      match,
      direct_response: { status: 503, body: { inline_string: `${s.name} is shedding ${r.name} (${pb.mode} mode); retry after ${pb.retryAfterSeconds}s\n` } },
      response_headers_to_add: [{ header: { key: 'retry-after', value: String(pb.retryAfterSeconds) }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
    };
  }
  return {
    name: `${s.name}:${r.port}`,
    match,
    route: {
      ...destination(s, r.port),
      // Envoy sends the copy without waiting for it and drops its answer; the client sees only the primary's.
      ...(st.shadow && { request_mirror_policies: [{ cluster: clusterName(st.shadow.service, r.port), runtime_fraction: { default_value: { numerator: Math.round(st.shadow.percent * 10_000), denominator: 'MILLION' } } }] }),
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
