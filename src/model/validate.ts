import net from 'node:net';
import { err, ok, type Result } from '../result.js';
import { runSteps, type Steps } from '../steps.js';
import {
  DEFAULT_LISTENER,
  DEFAULT_OPTIONAL,
  DEFAULT_RETRY_AFTER_SECONDS,
  DEFAULT_SETTINGS,
  PLAYBOOK_MODES,
  type Endpoint,
  type ListenerSpec,
  type Model,
  type Playbook,
  type PlaybookMode,
  type RouteSpec,
  type Service,
  type ServicePort,
  type TrafficSettings,
} from './model.js';

/** Where in a raw document a problem is: keys and list indexes from the root. */
export type Path = readonly (string | number)[];

/** One reason a raw document was rejected. */
export interface Problem {
  readonly path: Path;
  readonly message: string;
}

/** Renders a path as `services[2].settings.timeout`. */
export function formatPath(path: Path): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${p}` : p;
  return out || '(root)';
}

const SERVICE_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?(\/[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)?$/;
const PORT_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
const RETRY_ON = new Set([
  '5xx', 'gateway-error', 'reset', 'reset-before-request', 'connect-failure', 'envoy-ratelimited', 'retriable-4xx',
  'refused-stream', 'retriable-status-codes', 'retriable-headers', 'http3-post-connect-failure',
]);
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Reads durations written as `500ms`, `30s`, `2m`, `1h` (or a bare number of seconds) into whole milliseconds.
 */
export function parseDuration(value: unknown): Result<number> {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return ok(Math.round(value * 1000));
  if (typeof value !== 'string') return err('expected a duration such as "500ms", "30s" or "2m"');
  const m = DURATION.exec(value.trim());
  if (!m) return err(`"${value}" is not a duration such as "500ms", "30s" or "2m"`);
  return ok(Math.round(Number(m[1]) * UNIT_MS[m[2]!]!));
}

/** Collects problems while reading one raw document. */
class Reader {
  readonly problems: Problem[] = [];

  fail(path: Path, message: string): undefined {
    this.problems.push({ path, message });
    return undefined;
  }

  object(value: unknown, path: Path, known: readonly string[]): Record<string, unknown> | undefined {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return this.fail(path, 'expected a mapping');
    const obj = value as Record<string, unknown>;
    for (const key of Object.keys(obj)) {
      if (!known.includes(key)) this.fail([...path, key], `unknown field (expected one of: ${known.join(', ')})`);
    }
    return obj;
  }

  list(value: unknown, path: Path): unknown[] | undefined {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) return this.fail(path, 'expected a list');
    return value;
  }

  string(value: unknown, path: Path, pattern?: RegExp, what?: string): string | undefined {
    if (typeof value !== 'string') return this.fail(path, 'expected a string');
    if (pattern && !pattern.test(value)) return this.fail(path, `"${value}" is not a valid ${what ?? 'value'}`);
    return value;
  }

  int(value: unknown, path: Path, min: number, max: number): number | undefined {
    if (typeof value !== 'number' || !Number.isInteger(value)) return this.fail(path, 'expected a whole number');
    if (value < min || value > max) return this.fail(path, `${value} is out of range (${min} to ${max})`);
    return value;
  }

  bool(value: unknown, path: Path): boolean | undefined {
    if (typeof value !== 'boolean') return this.fail(path, 'expected true or false');
    return value;
  }

  duration(value: unknown, path: Path, maxMs = 86_400_000): number | undefined {
    const r = parseDuration(value);
    if (!r.ok) return this.fail(path, r.error);
    if (r.value > maxMs) return this.fail(path, `longer than the ${maxMs / 1000}s maximum`);
    return r.value;
  }
}

/**
 * Validates a raw model document (as parsed from YAML or JSON) into a {@link Model}. The document shape is
 * documented in examples/endpoints.yaml. Every problem is reported with its path, not just the first.
 */
export function readModel(raw: unknown): Result<Model, Problem[]> {
  const r = new Reader();
  const root = r.object(raw ?? {}, [], ['listener', 'services']);
  if (!root) return err(r.problems);
  const listener = root['listener'] === undefined ? DEFAULT_LISTENER : readListener(r, root['listener']);
  const services: Service[] = [];
  const seen = new Map<string, number>();
  (r.list(root['services'], ['services']) ?? []).forEach((s, i) => {
    const svc = readService(r, s, ['services', i]);
    if (!svc) return;
    const dup = seen.get(svc.name);
    if (dup !== undefined) r.fail(['services', i, 'name'], `duplicate service name "${svc.name}" (also services[${dup}])`);
    seen.set(svc.name, i);
    if (listener && svc.name === listener.name) {
      r.fail(['services', i, 'name'], `"${svc.name}" is the listener's name; rename the service or the listener`);
    }
    services.push(svc);
  });
  checkRouteConflicts(r, services, seen);
  for (const v of variantProblems(services)) r.fail(['services', seen.get(v.service)!, 'settings', ...v.path], v.message);
  if (r.problems.length > 0 || !listener) return err(r.problems);
  services.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return ok({ listener, services });
}

function readListener(r: Reader, raw: unknown): ListenerSpec | undefined {
  const p = ['listener'];
  const o = r.object(raw, p, ['name', 'address', 'port']);
  if (!o) return undefined;
  const name = o['name'] === undefined ? DEFAULT_LISTENER.name : r.string(o['name'], [...p, 'name'], PORT_NAME, 'listener name');
  const address = o['address'] === undefined ? DEFAULT_LISTENER.address : readAddress(r, o['address'], [...p, 'address']);
  const port = o['port'] === undefined ? DEFAULT_LISTENER.port : r.int(o['port'], [...p, 'port'], 1, 65535);
  if (name === undefined || address === undefined || port === undefined) return undefined;
  return { name, address, port };
}

function readAddress(r: Reader, raw: unknown, path: Path): string | undefined {
  const s = r.string(raw, path);
  if (s === undefined) return undefined;
  if (net.isIP(s) === 0) return r.fail(path, `"${s}" is not an IPv4 or IPv6 address`);
  return s;
}

function readService(r: Reader, raw: unknown, p: Path): Service | undefined {
  const o = r.object(raw, p, ['name', 'ports', 'endpoints', 'settings', 'routes']);
  if (!o) return undefined;
  const name = r.string(o['name'], [...p, 'name'], SERVICE_NAME, 'service name (lower-case DNS name, optionally namespace/name)');
  const ports = o['ports'] === undefined ? [{ name: 'http', protocol: 'http1' as const }] : readPorts(r, o['ports'], [...p, 'ports']);
  if (name === undefined || ports === undefined) return undefined;
  const portNames = ports.map((x) => x.name);
  const settings = readSettings(r, o['settings'], [...p, 'settings']);
  const endpoints = readEndpoints(r, o['endpoints'], [...p, 'endpoints'], portNames);
  const routes = o['routes'] === undefined ? defaultRoutes(name, portNames[0]!) : readRoutes(r, o['routes'], [...p, 'routes'], portNames);
  if (!settings || !endpoints || !routes) return undefined;
  for (const x of playbookRouteProblems(settings, routes)) r.fail([...p, 'settings', ...x.path], x.message);
  return { name, ports, endpoints, settings, routes };
}

function readPorts(r: Reader, raw: unknown, p: Path): ServicePort[] | undefined {
  const list = r.list(raw, p);
  if (!list) return undefined;
  if (list.length === 0) return r.fail(p, 'a service needs at least one port');
  const out: ServicePort[] = [];
  list.forEach((x, i) => {
    const o = r.object(x, [...p, i], ['name', 'protocol']);
    if (!o) return;
    const name = r.string(o['name'], [...p, i, 'name'], PORT_NAME, 'port name (lower-case DNS label)');
    const protocol = o['protocol'] ?? 'http1';
    if (protocol !== 'http1' && protocol !== 'http2') {
      r.fail([...p, i, 'protocol'], `"${String(protocol)}" is not a protocol (http1 or http2)`);
      return;
    }
    if (name === undefined) return;
    if (out.some((q) => q.name === name)) r.fail([...p, i, 'name'], `duplicate port name "${name}"`);
    out.push({ name, protocol });
  });
  return out.length === list.length ? out : undefined;
}

function readEndpoints(r: Reader, raw: unknown, p: Path, portNames: readonly string[]): Endpoint[] | undefined {
  const list = r.list(raw, p);
  if (!list) return undefined;
  const out: Endpoint[] = [];
  const seen = new Map<string, number>();
  const before = r.problems.length;
  list.forEach((x, i) => {
    const q = [...p, i];
    const o = r.object(x, q, ['address', 'port', 'ports', 'zone', 'ready', 'serving', 'terminating']);
    if (!o) return;
    const address = readAddress(r, o['address'], [...q, 'address']);
    const ports = readEndpointPorts(r, o, q, portNames);
    const zone = o['zone'] === undefined ? '' : r.string(o['zone'], [...q, 'zone']);
    const terminating = o['terminating'] === undefined ? false : r.bool(o['terminating'], [...q, 'terminating']);
    // Kubernetes: a missing `ready` means ready unless terminating; `serving` defaults to `ready`.
    const ready = o['ready'] === undefined ? !terminating : r.bool(o['ready'], [...q, 'ready']);
    const serving = o['serving'] === undefined ? ready : r.bool(o['serving'], [...q, 'serving']);
    if (address === undefined || !ports || zone === undefined || ready === undefined || serving === undefined || terminating === undefined) return;
    // Pods are told apart by address; hosts sharing an address (several servers on one machine) by port.
    const key = `${address} ${JSON.stringify(ports)}`;
    const dup = seen.get(key);
    if (dup !== undefined) {
      r.fail([...q, 'address'], `duplicate endpoint ${address} with the same ports (also ${formatPath([...p, dup])})`);
      return;
    }
    seen.set(key, i);
    out.push({ address, ports, zone, ready: ready && !terminating, serving, terminating });
  });
  if (r.problems.length > before) return undefined;
  return out.sort((a, b) => compareAddresses(a.address, b.address) || firstPort(a) - firstPort(b));
}

function readEndpointPorts(r: Reader, o: Record<string, unknown>, q: Path, portNames: readonly string[]): Record<string, number> | undefined {
  if (o['port'] !== undefined && o['ports'] !== undefined) return r.fail(q, 'give either port or ports, not both');
  if (o['port'] !== undefined) {
    if (portNames.length !== 1) return r.fail([...q, 'port'], `the service has ${portNames.length} ports; use ports: {name: number}`);
    const n = r.int(o['port'], [...q, 'port'], 1, 65535);
    return n === undefined ? undefined : { [portNames[0]!]: n };
  }
  const m = r.object(o['ports'], [...q, 'ports'], portNames);
  if (!m) return undefined;
  const out: Record<string, number> = {};
  for (const name of portNames) {
    if (m[name] === undefined) continue;
    const n = r.int(m[name], [...q, 'ports', name], 1, 65535);
    if (n === undefined) return undefined;
    out[name] = n;
  }
  if (Object.keys(out).length === 0) return r.fail(q, 'an endpoint needs port (or ports)');
  return out;
}

function readRoutes(r: Reader, raw: unknown, p: Path, portNames: readonly string[]): RouteSpec[] | undefined {
  const list = r.list(raw, p);
  if (!list) return undefined;
  const out: RouteSpec[] = [];
  const before = r.problems.length;
  list.forEach((x, i) => {
    const q = [...p, i];
    const o = r.object(x, q, ['name', 'prefix', 'headers', 'port']);
    if (!o) return;
    const name = o['name'] === undefined ? undefined : r.string(o['name'], [...q, 'name'], PORT_NAME, 'route name (lower-case DNS label)');
    if (name !== undefined && out.some((x) => x.name === name)) r.fail([...q, 'name'], `duplicate route name "${name}"`);
    const prefix = o['prefix'] === undefined ? '/' : r.string(o['prefix'], [...q, 'prefix'], /^\/[^\s]*$/, 'path prefix (must start with /)');
    const port = o['port'] === undefined ? portNames[0] : r.string(o['port'], [...q, 'port']);
    if (port !== undefined && !portNames.includes(port)) r.fail([...q, 'port'], `no port named "${port}" in this service`);
    const headers: [string, string][] = [];
    if (o['headers'] !== undefined) {
      const h = r.object(o['headers'], [...q, 'headers'], Object.keys(o['headers'] ?? {}));
      for (const [k, v] of Object.entries(h ?? {})) {
        if (!HEADER_NAME.test(k)) r.fail([...q, 'headers', k], `"${k}" is not a lower-case header name`);
        else if (typeof v !== 'string') r.fail([...q, 'headers', k], 'expected a string');
        else headers.push([k, v]);
      }
    }
    if (prefix === undefined || port === undefined) return;
    headers.sort((a, b) => (a[0] < b[0] ? -1 : 1));
    out.push({ ...(name !== undefined && { name }), prefix, headers, port });
  });
  return r.problems.length > before ? undefined : out;
}

/**
 * Validates a raw list of routes (the `routes` of the endpoints file; the `inferplane.io/routes` annotation)
 * for a service with the given port names.
 */
export function validateRoutes(raw: unknown, portNames: readonly string[], at: Path = []): Result<RouteSpec[], Problem[]> {
  const r = new Reader();
  const routes = readRoutes(r, raw, at, portNames);
  return routes && r.problems.length === 0 ? ok(routes) : err(r.problems);
}

/** The routes a service gets when its source names none: prefix `/` with header `x-model: <short name>`. */
export function defaultRoutes(serviceName: string, port: string): RouteSpec[] {
  return [{ prefix: '/', headers: [['x-model', serviceName.slice(serviceName.indexOf('/') + 1)]], port }];
}

function routeKey(rt: RouteSpec): string {
  return JSON.stringify([rt.prefix, rt.headers]);
}

/** A route that repeats a match an earlier service already routes. */
export interface RouteConflict {
  readonly service: string;
  readonly route: number;
  readonly message: string;
}

/** Routes that repeat a match an earlier service (in the given order) already routes: service, index, reason. */
export function routeConflicts(services: readonly Service[]): RouteConflict[] {
  return runSteps(routeConflictsSteps(services));
}

/** {@link routeConflicts} as steps, one per service (src/steps.ts): thousands of services never block the loop. */
export function* routeConflictsSteps(services: readonly Service[]): Steps<RouteConflict[]> {
  const owner = new Map<string, string>();
  const out: RouteConflict[] = [];
  for (const s of services) {
    s.routes.forEach((rt, j) => {
      const key = routeKey(rt);
      const prev = owner.get(key);
      if (prev !== undefined) out.push({ service: s.name, route: j, message: `the same match (prefix ${rt.prefix}, headers ${JSON.stringify(Object.fromEntries(rt.headers))}) is already routed to ${prev}` });
      else owner.set(key, s.name);
    });
    yield;
  }
  return out;
}

function checkRouteConflicts(r: Reader, services: readonly Service[], index: ReadonlyMap<string, number>): void {
  for (const c of routeConflicts(services)) r.fail(['services', index.get(c.service)!, 'routes', c.route], c.message);
}

const SETTINGS_KEYS = ['loadBalancing', 'timeout', 'idleTimeout', 'connectTimeout', 'retries', 'circuitBreakers', 'outlierDetection', 'healthCheck', 'slowStart', 'canary', 'shadow', 'zoneAffinity', 'loadAwareWeights', 'playbooks'];

/**
 * Playbooks whose `shed` lists name a route the service does not have (by name): each with its path under the
 * settings (`playbooks.emergency.shed[1]`).
 */
export function playbookRouteProblems(settings: TrafficSettings, routes: readonly RouteSpec[]): Problem[] {
  const names = routes.flatMap((rt) => (rt.name === undefined ? [] : [rt.name]));
  const out: Problem[] = [];
  for (const mode of PLAYBOOK_MODES) {
    settings.playbooks[mode]?.shed.forEach((route, i) => {
      if (!names.includes(route)) out.push({ path: ['playbooks', mode, 'shed', i], message: `no route named "${route}" in this service (${names.length > 0 ? `named routes: ${names.join(', ')}` : 'no route has a name; give routes a name to shed them'})` });
    });
  }
  return out;
}

/**
 * Validates raw per-service settings (the `settings` block of the endpoints file; Kubernetes annotations map
 * onto the same shape). Missing fields take {@link DEFAULT_SETTINGS}; optional blocks are enabled by giving
 * them (even `{}` or `true`), and disabled by omitting them or writing `false`. Problems carry `at` + field.
 */
export function validateSettings(raw: unknown, at: Path = []): Result<TrafficSettings, Problem[]> {
  const r = new Reader();
  const s = readSettings(r, raw, at);
  return s && r.problems.length === 0 ? ok(s) : err(r.problems);
}

function readSettings(r: Reader, raw: unknown, p: Path): TrafficSettings | undefined {
  if (raw === undefined || raw === null) return DEFAULT_SETTINGS;
  const o = r.object(raw, p, SETTINGS_KEYS);
  if (!o) return undefined;
  const before = r.problems.length;
  const d = DEFAULT_SETTINGS;
  const dur = (key: string, def: number, base: Record<string, unknown> = o, at: Path = p) =>
    base[key] === undefined ? def : r.duration(base[key], [...at, key]);
  const int = (key: string, def: number, min: number, max: number, base: Record<string, unknown>, at: Path) =>
    base[key] === undefined ? def : r.int(base[key], [...at, key], min, max);

  let loadBalancing = d.loadBalancing;
  if (o['loadBalancing'] !== undefined) {
    const lb = r.string(o['loadBalancing'], [...p, 'loadBalancing']);
    if (lb === 'least-request' || lb === 'round-robin') loadBalancing = lb;
    else if (lb !== undefined) r.fail([...p, 'loadBalancing'], `"${lb}" is not least-request or round-robin`);
  }
  const timeoutMs = dur('timeout', d.timeoutMs);
  const idleTimeoutMs = dur('idleTimeout', d.idleTimeoutMs);
  const connectTimeoutMs = dur('connectTimeout', d.connectTimeoutMs);
  if (connectTimeoutMs === 0) r.fail([...p, 'connectTimeout'], 'must be greater than zero');

  const rp = [...p, 'retries'];
  const ro = o['retries'] === undefined ? {} : r.object(o['retries'], rp, ['attempts', 'on', 'statusCodes', 'perTryTimeout', 'hostSelectionAttempts', 'budgetPercent', 'minRetryConcurrency']);
  let retries = d.retries;
  if (ro) {
    const on = ro['on'] === undefined ? d.retries.on : (r.list(ro['on'], [...rp, 'on']) ?? []).map((v, i) => {
      const s = r.string(v, [...rp, 'on', i]);
      if (s !== undefined && !RETRY_ON.has(s)) r.fail([...rp, 'on', i], `"${s}" is not an Envoy retry_on condition (${[...RETRY_ON].join(', ')})`);
      return s ?? '';
    });
    const statusCodes = ro['statusCodes'] === undefined ? d.retries.statusCodes : (r.list(ro['statusCodes'], [...rp, 'statusCodes']) ?? []).map((v, i) => r.int(v, [...rp, 'statusCodes', i], 100, 599) ?? 0);
    retries = {
      attempts: int('attempts', d.retries.attempts, 0, 10, ro, rp) ?? 0,
      on,
      statusCodes,
      perTryTimeoutMs: dur('perTryTimeout', d.retries.perTryTimeoutMs, ro, rp) ?? 0,
      hostSelectionAttempts: int('hostSelectionAttempts', d.retries.hostSelectionAttempts, 0, 10, ro, rp) ?? 0,
      budgetPercent: int('budgetPercent', d.retries.budgetPercent, 0, 100, ro, rp) ?? 0,
      minRetryConcurrency: int('minRetryConcurrency', d.retries.minRetryConcurrency, 0, 1_000_000, ro, rp) ?? 0,
    };
  }

  const cp = [...p, 'circuitBreakers'];
  const co = o['circuitBreakers'] === undefined ? {} : r.object(o['circuitBreakers'], cp, ['maxConnections', 'maxPendingRequests', 'maxRequests']);
  const cb = d.circuitBreakers;
  const circuitBreakers = co && {
    maxConnections: int('maxConnections', cb.maxConnections, 1, 100_000_000, co, cp) ?? 0,
    maxPendingRequests: int('maxPendingRequests', cb.maxPendingRequests, 1, 100_000_000, co, cp) ?? 0,
    maxRequests: int('maxRequests', cb.maxRequests, 1, 100_000_000, co, cp) ?? 0,
  };

  const optional = <T extends object>(key: string, known: readonly string[], read: (b: Record<string, unknown>, at: Path) => T): T | null => {
    const v = o[key];
    if (v === undefined || v === false || v === null) return null;
    const b = r.object(v === true ? {} : v, [...p, key], known);
    return b ? read(b, [...p, key]) : null;
  };
  const od = DEFAULT_OPTIONAL.outlierDetection;
  const outlierDetection = optional('outlierDetection', ['consecutive5xx', 'interval', 'baseEjectionTime', 'maxEjectionPercent'], (b, at) => ({
    consecutive5xx: int('consecutive5xx', od.consecutive5xx, 1, 1000, b, at) ?? 0,
    intervalMs: dur('interval', od.intervalMs, b, at) ?? 0,
    baseEjectionTimeMs: dur('baseEjectionTime', od.baseEjectionTimeMs, b, at) ?? 0,
    maxEjectionPercent: int('maxEjectionPercent', od.maxEjectionPercent, 0, 100, b, at) ?? 0,
  }));
  const hd = DEFAULT_OPTIONAL.healthCheck;
  const healthCheck = optional('healthCheck', ['path', 'interval', 'timeout', 'unhealthyThreshold', 'healthyThreshold'], (b, at) => ({
    path: b['path'] === undefined ? hd.path : r.string(b['path'], [...at, 'path'], /^\/\S*$/, 'HTTP path') ?? '',
    intervalMs: dur('interval', hd.intervalMs, b, at) ?? 0,
    timeoutMs: dur('timeout', hd.timeoutMs, b, at) ?? 0,
    unhealthyThreshold: int('unhealthyThreshold', hd.unhealthyThreshold, 1, 100, b, at) ?? 0,
    healthyThreshold: int('healthyThreshold', hd.healthyThreshold, 1, 100, b, at) ?? 0,
  }));
  const sd = DEFAULT_OPTIONAL.slowStart;
  const slowStart = optional('slowStart', ['window', 'aggression'], (b, at) => {
    const ag = b['aggression'] ?? sd.aggression;
    if (typeof ag !== 'number' || !(ag > 0) || ag > 100) r.fail([...at, 'aggression'], 'expected a number above 0 and at most 100');
    return { windowMs: dur('window', sd.windowMs, b, at) ?? 0, aggression: typeof ag === 'number' ? ag : 1 };
  });
  // A canary takes a share of the requests (the primary keeps the rest); a shadow copies up to all of them.
  const variant = (key: 'canary' | 'shadow', share: 'weight' | 'percent', max: number, below: boolean) => {
    const v = o[key];
    if (v === undefined || v === null || v === false) return null;
    const at = [...p, key];
    const b = r.object(v, at, ['service', share]);
    if (!b) return null;
    const service = b['service'] === undefined ? (r.fail([...at, 'service'], 'missing: the service to send to'), undefined) : r.string(b['service'], [...at, 'service'], SERVICE_NAME, 'service name');
    const n = b[share];
    if (typeof n !== 'number' || !(n > 0) || (below ? n >= max : n > max)) {
      r.fail([...at, share], `expected a percentage above 0 and ${below ? 'below' : 'at most'} ${max}, got ${JSON.stringify(n)}`);
      return null;
    }
    return service === undefined ? null : { service, percent: n };
  };
  const canary = variant('canary', 'weight', 100, true);
  const shadow = variant('shadow', 'percent', 100, false);
  const zoneAffinity = o['zoneAffinity'] === undefined ? d.zoneAffinity : r.bool(o['zoneAffinity'], [...p, 'zoneAffinity']);
  const loadAwareWeights = o['loadAwareWeights'] === undefined ? d.loadAwareWeights : r.bool(o['loadAwareWeights'], [...p, 'loadAwareWeights']);
  const playbooks: Partial<Record<PlaybookMode, Playbook>> = {};
  const pbRaw = o['playbooks'];
  if (pbRaw !== undefined && pbRaw !== null) {
    const pp = [...p, 'playbooks'];
    const pbs = r.object(pbRaw, pp, PLAYBOOK_MODES);
    for (const mode of PLAYBOOK_MODES) {
      if (!pbs || pbs[mode] === undefined || pbs[mode] === null) continue;
      const at = [...pp, mode];
      const b = r.object(pbs[mode], at, ['timeout', 'retries', 'shed', 'retryAfter', 'fallback']);
      if (!b) continue;
      const rb = b['retries'] === undefined ? {} : r.object(b['retries'], [...at, 'retries'], ['attempts', 'perTryTimeout']);
      const shed = (r.list(b['shed'], [...at, 'shed']) ?? []).map((v, i) => r.string(v, [...at, 'shed', i], PORT_NAME, 'route name') ?? '');
      const retryAfter = b['retryAfter'] === undefined ? DEFAULT_RETRY_AFTER_SECONDS * 1000 : r.duration(b['retryAfter'], [...at, 'retryAfter']);
      if (retryAfter !== undefined && (retryAfter < 1000 || retryAfter % 1000 !== 0)) r.fail([...at, 'retryAfter'], 'Retry-After is whole seconds, at least 1s');
      const fallback = b['fallback'] === undefined || b['fallback'] === null ? null : r.string(b['fallback'], [...at, 'fallback'], SERVICE_NAME, 'service name');
      playbooks[mode] = {
        timeoutMs: b['timeout'] === undefined ? null : dur('timeout', 0, b, at) ?? null,
        retryAttempts: rb?.['attempts'] === undefined ? null : int('attempts', 0, 0, 10, rb, [...at, 'retries']) ?? null,
        perTryTimeoutMs: rb?.['perTryTimeout'] === undefined ? null : dur('perTryTimeout', 0, rb, [...at, 'retries']) ?? null,
        shed,
        retryAfterSeconds: Math.round((retryAfter ?? 0) / 1000),
        fallback: fallback ?? null,
      };
    }
  }
  for (const [block, key] of [[healthCheck, 'healthCheck'], [outlierDetection, 'outlierDetection'], [slowStart, 'slowStart']] as const) {
    if (block && Object.values(block).some((v) => v === 0) && r.problems.length === before) {
      r.fail([...p, key], 'durations and thresholds must be greater than zero');
    }
  }
  if (r.problems.length > before || timeoutMs === undefined || idleTimeoutMs === undefined || connectTimeoutMs === undefined || !circuitBreakers || zoneAffinity === undefined || loadAwareWeights === undefined) {
    return undefined;
  }
  return { loadBalancing, timeoutMs, idleTimeoutMs, connectTimeoutMs, retries, circuitBreakers, outlierDetection, healthCheck, slowStart, canary, shadow, zoneAffinity, loadAwareWeights, playbooks, inForce: null };
}

/** Where a service's traffic may be sent besides itself: a canary, a shadow, or a playbook's fallback. */
export type VariantSetting = 'canary' | 'shadow' | `playbooks.${PlaybookMode}.fallback`;

/** A canary, shadow or fallback that is not served: the service, the setting, its path, and why. */
export interface VariantProblem {
  readonly service: string;
  readonly setting: VariantSetting;
  readonly path: Path;
  readonly message: string;
}

/**
 * Canaries, shadows and playbook fallbacks that point nowhere useful: at a service that is not served, at the
 * service itself, or at one lacking a port the service routes to. Each names the service, the setting, and the
 * path of the offending key under the service's settings.
 */
export function variantProblems(services: readonly Service[]): VariantProblem[] {
  return runSteps(variantProblemsSteps(services));
}

/** {@link variantProblems} as steps, one per service (src/steps.ts). */
export function* variantProblemsSteps(services: readonly Service[]): Steps<VariantProblem[]> {
  const byName = new Map(services.map((s) => [s.name, s]));
  const out: VariantProblem[] = [];
  for (const s of services) {
    yield;
    const targets: [VariantSetting, string | undefined, Path, string][] = [
      ['canary', s.settings.canary?.service, ['canary', 'service'], 'a canary'],
      ['shadow', s.settings.shadow?.service, ['shadow', 'service'], 'a shadow'],
      ...PLAYBOOK_MODES.map((m): [VariantSetting, string | undefined, Path, string] => [`playbooks.${m}.fallback`, s.settings.playbooks[m]?.fallback ?? undefined, ['playbooks', m, 'fallback'], 'a fallback']),
    ];
    for (const [setting, name, path, what] of targets) {
      if (name === undefined) continue;
      const target = byName.get(name);
      const problem = (message: string) => out.push({ service: s.name, setting, path, message });
      if (name === s.name) problem(`the service itself: ${what} is another service`);
      else if (!target) problem(`no service "${name}" is served`);
      else {
        const missing = [...new Set(s.routes.map((r) => r.port))].filter((port) => !target.ports.some((tp) => tp.name === port));
        if (missing.length > 0) problem(`"${name}" has no port ${missing.map((m) => `"${m}"`).join(', ')}, which ${s.name}'s routes use`);
      }
    }
  }
  return out;
}

function firstPort(e: Endpoint): number {
  return Math.min(...Object.values(e.ports));
}

/** Orders addresses numerically within a family (IPv4 before IPv6), so output is stable across sources. */
export function compareAddresses(a: string, b: string): number {
  const ka = addressKey(a);
  const kb = addressKey(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

function addressKey(a: string): string {
  if (net.isIPv4(a)) return '4' + a.split('.').map((x) => x.padStart(3, '0')).join('.');
  return '6' + a;
}
