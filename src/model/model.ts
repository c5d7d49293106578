/**
 * inferplane's own model of what it serves: no Envoy or Kubernetes types, so sources and translators change
 * independently. Every value here has been validated; builders and translators may rely on it.
 */

/** The whole desired state: one Envoy-facing listener and the services behind it, sorted by name. */
export interface Model {
  readonly listener: ListenerSpec;
  readonly services: readonly Service[];
}

/** Where Envoy accepts client traffic; its routes send each request to one service. */
export interface ListenerSpec {
  /** Listener and RouteConfiguration name; no service may share it. */
  readonly name: string;
  readonly address: string;
  readonly port: number;
}

/** A model-serving service: one Envoy cluster per port. */
export interface Service {
  /** Unique; lower-case DNS-style, optionally `namespace/name`. Proxyless gRPC targets {@link proxylessName}. */
  readonly name: string;
  /** At least one; the first is the default target of routes. */
  readonly ports: readonly ServicePort[];
  /** Sorted by address, then port; no two share address and ports. May be empty (a cluster with no hosts). */
  readonly endpoints: readonly Endpoint[];
  readonly settings: TrafficSettings;
  /** How the Envoy listener picks this service; may be empty (reachable only by proxyless clients). */
  readonly routes: readonly RouteSpec[];
}

/** Upstream HTTP protocol for a port. */
export type UpstreamProtocol = 'http1' | 'http2';

/** A named port of a service. */
export interface ServicePort {
  readonly name: string;
  readonly protocol: UpstreamProtocol;
}

/** A request match on the Envoy listener that selects a service port. */
export interface RouteSpec {
  /** Optional; unique within the service: how a playbook's `shed` list names it. */
  readonly name?: string;
  /** Path prefix, starting with '/'. */
  readonly prefix: string;
  /** Exact header matches, sorted by header name; header names lower-case. */
  readonly headers: readonly (readonly [string, string])[];
  /** Name of the target port. */
  readonly port: string;
}

/**
 * One pod (or host) of a service. Conditions follow Kubernetes EndpointSlice semantics: `ready` means
 * serving and not terminating; a terminating pod that is still `serving` drains.
 */
export interface Endpoint {
  /** IPv4 or IPv6 literal. */
  readonly address: string;
  /** Port number per service port name; a port missing here means the endpoint does not serve that port. */
  readonly ports: Readonly<Record<string, number>>;
  /** Zone, '' when unknown: the Envoy locality. */
  readonly zone: string;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  /**
   * Envoy's load-balancing weight of this endpoint. Never set by a source: only {@link applyWeights} sets it,
   * for a service with load-aware weights; absent, Envoy weighs every endpoint alike.
   */
  readonly weight?: number;
}

/**
 * How Envoy picks a host. `least-request`: two random hosts, the one with fewer requests in flight (power of two
 * choices), round robin listed second for proxyless gRPC clients; `round-robin`: round robin only (a baseline,
 * or for hosts whose requests all cost the same).
 */
export type LoadBalancing = 'least-request' | 'round-robin';

/** Per-service traffic settings. Durations are whole milliseconds. See DEFAULT_SETTINGS for defaults. */
export interface TrafficSettings {
  readonly loadBalancing: LoadBalancing;
  /** Whole-request timeout (time-boxed inference); 0 disables. */
  readonly timeoutMs: number;
  /** Cut a stream only after this long with no bytes either way; token streaming resets it. 0 disables. */
  readonly idleTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly retries: RetrySettings;
  readonly circuitBreakers: CircuitBreakerSettings;
  readonly outlierDetection: OutlierDetectionSettings | null;
  readonly healthCheck: HealthCheckSettings | null;
  /** Off by default: while any host is in slow start, Envoy leaves power-of-two-choices for a weighted schedule. */
  readonly slowStart: SlowStartSettings | null;
  /** A share of this service's requests sent to another service (a new model version) instead. */
  readonly canary: VariantTarget | null;
  /** A share of this service's requests copied to another service; its answers are discarded. */
  readonly shadow: VariantTarget | null;
  /**
   * Keep each client's requests in its own zone: an xDS client reporting a zone (node locality) gets this
   * service's endpoints in that zone at priority 0 and the others at priority 1 (spillover), while its zone has a
   * ready endpoint; otherwise one priority. Clients reporting no zone, or a zone with no endpoints, get one.
   */
  readonly zoneAffinity: boolean;
  /**
   * Off by default: weigh each endpoint by its pod's own load (vLLM's running + waiting requests, read by the
   * control plane every second), so that many Envoys, each seeing only its own requests, still send a slow pod
   * less. While the pods are alike the weights stay equal and Envoy keeps two choices. docs/balancing.md.
   */
  readonly loadAwareWeights: boolean;
  /** What changes in the data plane while the scaler is in surge or emergency mode for this service. */
  readonly playbooks: Readonly<Partial<Record<PlaybookMode, Playbook>>>;
  /**
   * The playbook in force. Never set by a source: only {@link applyPlaybooks} sets it, on the model it
   * publishes while the service is in that mode; null in normal mode.
   */
  readonly inForce: InForcePlaybook | null;
}

/** The scaler's modes that may carry a data-plane playbook (normal is the settings themselves). */
export type PlaybookMode = 'surge' | 'emergency';

/** The scaler's modes: normal, and the two with playbooks. */
export type Mode = 'normal' | PlaybookMode;

/** The modes that may carry a playbook, in order of pressure. */
export const PLAYBOOK_MODES: readonly PlaybookMode[] = ['surge', 'emergency'];

/**
 * One mode's data-plane changes. Each of timeout, retry attempts and per-try timeout replaces the normal
 * setting when given (null: unchanged).
 */
export interface Playbook {
  readonly timeoutMs: number | null;
  readonly retryAttempts: number | null;
  readonly perTryTimeoutMs: number | null;
  /** Routes (by name) answered at the edge with 503 and Retry-After, so the service's core flows keep its pods. */
  readonly shed: readonly string[];
  /** Seconds in the Retry-After header of shed routes. */
  readonly retryAfterSeconds: number;
  /** A (smaller) model service the rest of the routes go to instead, on the same port names; no canary split. */
  readonly fallback: string | null;
}

/** A playbook in force, with the mode that brought it. */
export interface InForcePlaybook extends Playbook {
  readonly mode: PlaybookMode;
}

/**
 * Another service of the same model (a canary or a shadow), on the same port names. `percent`: of the
 * requests, above 0, at most 100 for a shadow and below 100 for a canary (the primary keeps the rest).
 */
export interface VariantTarget {
  readonly service: string;
  readonly percent: number;
}

/** Retry policy: which failures retry, how often, and the fleet-wide budget that caps retry storms. */
export interface RetrySettings {
  /** Retries after the first attempt; 0 disables retries. */
  readonly attempts: number;
  /** Envoy `retry_on` conditions. */
  readonly on: readonly string[];
  /** Status codes retried when `retriable-status-codes` is in `on`. */
  readonly statusCodes: readonly number[];
  /** Per-attempt timeout; 0 means the route timeout bounds each attempt. */
  readonly perTryTimeoutMs: number;
  /** Host re-selections so a retry avoids the host that failed. */
  readonly hostSelectionAttempts: number;
  /** Active retries allowed, as a percentage of active requests. */
  readonly budgetPercent: number;
  /** Retries always allowed regardless of the budget. */
  readonly minRetryConcurrency: number;
}

/** Per-Envoy limits on one cluster. LLM requests last seconds, so these are far above Envoy's 1024 defaults. */
export interface CircuitBreakerSettings {
  readonly maxConnections: number;
  readonly maxPendingRequests: number;
  readonly maxRequests: number;
}

/** Passive health checking: eject hosts that keep failing. */
export interface OutlierDetectionSettings {
  readonly consecutive5xx: number;
  readonly intervalMs: number;
  readonly baseEjectionTimeMs: number;
  readonly maxEjectionPercent: number;
}

/** Active HTTP health checking by Envoy. */
export interface HealthCheckSettings {
  readonly path: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly unhealthyThreshold: number;
  readonly healthyThreshold: number;
}

/** Envoy slow start for new hosts (disables power-of-two-choices while active). */
export interface SlowStartSettings {
  readonly windowMs: number;
  /** Ramp shape; 1 is linear. */
  readonly aggression: number;
}

/** Defaults applied to every field a source leaves out. */
export const DEFAULT_SETTINGS: TrafficSettings = {
  loadBalancing: 'least-request',
  timeoutMs: 120_000,
  idleTimeoutMs: 60_000,
  connectTimeoutMs: 2_000,
  retries: {
    attempts: 2,
    on: ['connect-failure', 'refused-stream', 'reset', 'retriable-status-codes'],
    statusCodes: [503],
    perTryTimeoutMs: 0,
    hostSelectionAttempts: 3,
    budgetPercent: 20,
    minRetryConcurrency: 10,
  },
  circuitBreakers: { maxConnections: 100_000, maxPendingRequests: 100_000, maxRequests: 100_000 },
  outlierDetection: null,
  healthCheck: null,
  canary: null,
  shadow: null,
  slowStart: null,
  zoneAffinity: false,
  loadAwareWeights: false,
  playbooks: {},
  inForce: null,
};

/** Retry-After of shed routes when a playbook does not say. */
export const DEFAULT_RETRY_AFTER_SECONDS = 30;

/**
 * The model as published while services are in modes: each service in a mode its settings have a playbook for
 * gets that playbook's timeout and retries and {@link TrafficSettings.inForce}; the rest are returned as they
 * are (the same objects). A fallback to a service this model does not serve is dropped (sources refuse those;
 * this only guards a race). Results are cached per source object, so an unchanged service stays the same object
 * from one publication to the next (the endpoints-only fast path depends on it).
 */
export function applyPlaybooks(model: Model, modeOf: (service: string) => Mode): Model {
  let changed = false;
  const names = new Set(model.services.map((s) => s.name));
  const services = model.services.map((s) => {
    const mode = modeOf(s.name);
    const pb = mode === 'normal' ? undefined : s.settings.playbooks[mode];
    if (!pb || mode === 'normal') return s;
    changed = true;
    const fallback = pb.fallback !== null && names.has(pb.fallback) ? pb.fallback : null;
    const key = `${mode} ${fallback ?? ''}`;
    const settings = cached(SETTINGS_APPLIED, s.settings, key, () => {
      const st = s.settings;
      return {
        ...st,
        timeoutMs: pb.timeoutMs ?? st.timeoutMs,
        retries: { ...st.retries, attempts: pb.retryAttempts ?? st.retries.attempts, perTryTimeoutMs: pb.perTryTimeoutMs ?? st.retries.perTryTimeoutMs },
        canary: fallback !== null ? null : st.canary,
        inForce: { ...pb, fallback, mode },
      };
    });
    return cached(SERVICES_APPLIED, s, key, () => ({ ...s, settings }));
  });
  return changed ? { listener: model.listener, services } : model;
}

/** How an endpoint is named in load-aware weights: `address:port` of its first port (`[v6]:port`). */
export function endpointKey(address: string, port: number | undefined): string {
  return `${address.includes(':') ? `[${address}]` : address}:${port ?? ''}`;
}

/**
 * The model as published with load-aware weights: each service whose settings ask for them and for which
 * `weightsOf` has weights gets them on its endpoints (by {@link endpointKey}; an endpoint without one keeps none); the
 * rest are returned as they are (the same objects). A service weighed with the same weights object as before is
 * the same object as before, so unchanged services cost the endpoints-only fast path nothing.
 */
export function applyWeights(model: Model, weightsOf: (service: string) => ReadonlyMap<string, number> | undefined): Model {
  let changed = false;
  const services = model.services.map((s) => {
    const weights = s.settings.loadAwareWeights ? weightsOf(s.name) : undefined;
    if (!weights || weights.size === 0) return s;
    changed = true;
    const held = WEIGHED.get(s);
    if (held?.weights === weights) return held.service;
    const port = s.ports[0]?.name;
    const service = { ...s, endpoints: s.endpoints.map((e) => {
      const w = port === undefined ? undefined : weights.get(endpointKey(e.address, e.ports[port]));
      return w === undefined ? e : { ...e, weight: w };
    }) };
    WEIGHED.set(s, { weights, service });
    return service;
  });
  return changed ? { listener: model.listener, services } : model;
}

const WEIGHED = new WeakMap<Service, { weights: ReadonlyMap<string, number>; service: Service }>();

// Keyed by the source's objects: a service whose endpoints alone changed keeps its applied settings object.
const SETTINGS_APPLIED = new WeakMap<TrafficSettings, Map<string, TrafficSettings>>();
const SERVICES_APPLIED = new WeakMap<Service, Map<string, Service>>();

function cached<K extends object, V>(memo: WeakMap<K, Map<string, V>>, from: K, key: string, make: () => V): V {
  let byKey = memo.get(from);
  if (!byKey) memo.set(from, (byKey = new Map()));
  let out = byKey.get(key);
  if (out === undefined) byKey.set(key, (out = make()));
  return out;
}

/** Defaults for the optional blocks, used when a source enables one without giving every field. */
export const DEFAULT_OPTIONAL = {
  outlierDetection: { consecutive5xx: 5, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 50 },
  healthCheck: { path: '/health', intervalMs: 5_000, timeoutMs: 1_000, unhealthyThreshold: 3, healthyThreshold: 1 },
  slowStart: { windowMs: 30_000, aggression: 1 },
} as const satisfies {
  outlierDetection: OutlierDetectionSettings;
  healthCheck: HealthCheckSettings;
  slowStart: SlowStartSettings;
};

/** Default listener when a source names none. */
export const DEFAULT_LISTENER: ListenerSpec = { name: 'ingress', address: '0.0.0.0', port: 10000 };

/**
 * Name of a service's API listener and route table for proxyless gRPC: the target is `xds:///<this>`, and gRPC
 * sends it as the HTTP/2 :authority, where '/' is not allowed, so `namespace/name` becomes `name.namespace`
 * (as in cluster DNS).
 */
export function proxylessName(service: string): string {
  const slash = service.indexOf('/');
  return slash < 0 ? service : `${service.slice(slash + 1)}.${service.slice(0, slash)}`;
}

/** Envoy cluster (and EDS resource) name of a service port. '/' cannot appear in a port name, so it is unambiguous. */
export function clusterName(service: string, port: string): string {
  return `${service}/${port}`;
}
