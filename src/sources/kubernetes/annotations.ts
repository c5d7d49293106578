import { parse } from 'yaml';
import type { RouteSpec, TrafficSettings } from '../../model/model.js';
import { defaultRoutes, formatPath, playbookRouteProblems, validateRoutes, validateSettings } from '../../model/validate.js';

/** Prefix of every annotation inferplane reads on a Service. */
export const ANNOTATION_PREFIX = 'inferplane.io/';

type Kind = 'string' | 'duration' | 'int' | 'bool' | 'list' | 'int-list' | 'block';

/**
 * Annotation name (after the prefix) → where its value goes in the settings document and how it is read.
 * Blocks take `true`, `false`, or a YAML/JSON mapping of the same fields as the endpoints file.
 */
export const SETTING_ANNOTATIONS: Readonly<Record<string, readonly [path: readonly string[], kind: Kind]>> = {
  'load-balancing': [['loadBalancing'], 'string'],
  timeout: [['timeout'], 'duration'],
  'idle-timeout': [['idleTimeout'], 'duration'],
  'connect-timeout': [['connectTimeout'], 'duration'],
  retries: [['retries', 'attempts'], 'int'],
  'retry-on': [['retries', 'on'], 'list'],
  'retriable-status-codes': [['retries', 'statusCodes'], 'int-list'],
  'per-try-timeout': [['retries', 'perTryTimeout'], 'duration'],
  'retry-host-selection-attempts': [['retries', 'hostSelectionAttempts'], 'int'],
  'retry-budget-percent': [['retries', 'budgetPercent'], 'int'],
  'min-retry-concurrency': [['retries', 'minRetryConcurrency'], 'int'],
  'max-connections': [['circuitBreakers', 'maxConnections'], 'int'],
  'max-pending-requests': [['circuitBreakers', 'maxPendingRequests'], 'int'],
  'max-requests': [['circuitBreakers', 'maxRequests'], 'int'],
  'outlier-detection': [['outlierDetection'], 'block'],
  'health-check': [['healthCheck'], 'block'],
  'slow-start': [['slowStart'], 'block'],
  canary: [['canary'], 'block'],
  shadow: [['shadow'], 'block'],
  'zone-affinity': [['zoneAffinity'], 'bool'],
  'load-aware-weights': [['loadAwareWeights'], 'bool'],
  playbooks: [['playbooks'], 'block'],
};

/** The annotation holding the Envoy route matches (a YAML/JSON list, as `routes` in the endpoints file). */
export const ROUTES_ANNOTATION = `${ANNOTATION_PREFIX}routes`;

/** A problem with one annotation, to be reported on the Service. */
export interface AnnotationProblem {
  readonly annotation: string;
  readonly message: string;
}

function readValue(kind: Kind, text: string): { value: unknown } | { error: string } {
  const t = text.trim();
  switch (kind) {
    case 'string':
    case 'duration':
      return { value: t };
    case 'int':
      return /^-?\d+$/.test(t) ? { value: Number(t) } : { error: `"${text}" is not a whole number` };
    case 'bool':
      return t === 'true' || t === 'false' ? { value: t === 'true' } : { error: `"${text}" is not true or false` };
    case 'list':
      return { value: t.split(',').map((x) => x.trim()).filter(Boolean) };
    case 'int-list': {
      const parts = t.split(',').map((x) => x.trim()).filter(Boolean);
      const bad = parts.find((x) => !/^\d+$/.test(x));
      return bad !== undefined ? { error: `"${bad}" is not a whole number` } : { value: parts.map(Number) };
    }
    case 'block': {
      try {
        const v: unknown = parse(t, { logLevel: 'error' });
        return v === true || v === false || (typeof v === 'object' && v !== null && !Array.isArray(v)) ? { value: v } : { error: 'expected true, false or a mapping' };
      } catch (e) {
        return { error: `not valid YAML/JSON: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}` };
      }
    }
  }
}

function setIn(doc: Record<string, any>, path: readonly string[], value: unknown): void {
  let o = doc;
  for (const k of path.slice(0, -1)) o = o[k] ??= {};
  o[path[path.length - 1]!] = value;
}

/**
 * Reads a Service's `inferplane.io/*` annotations into traffic settings and routes. Every problem names its
 * annotation; an unknown `inferplane.io/` annotation is a problem too (a typo must not pass silently).
 * Returns the settings only when there is no problem at all: the caller keeps the service's last good ones.
 */
export function readAnnotations(
  annotations: Readonly<Record<string, string>> | undefined,
  serviceName: string,
  portNames: readonly string[],
): { settings: TrafficSettings; routes: RouteSpec[] } | { problems: AnnotationProblem[] } {
  const problems: AnnotationProblem[] = [];
  const doc: Record<string, any> = {};
  const owner = new Map<string, string>();
  let routesText: string | undefined;
  for (const [name, text] of Object.entries(annotations ?? {})) {
    if (!name.startsWith(ANNOTATION_PREFIX)) continue;
    if (name === ROUTES_ANNOTATION) {
      routesText = text;
      continue;
    }
    const spec = SETTING_ANNOTATIONS[name.slice(ANNOTATION_PREFIX.length)];
    if (!spec) {
      problems.push({ annotation: name, message: `unknown annotation (known: ${[...Object.keys(SETTING_ANNOTATIONS), 'routes'].map((k) => ANNOTATION_PREFIX + k).join(', ')})` });
      continue;
    }
    const v = readValue(spec[1], text);
    if ('error' in v) {
      problems.push({ annotation: name, message: v.error });
      continue;
    }
    setIn(doc, spec[0], v.value);
    owner.set(spec[0].join('.'), name);
  }
  const settings = validateSettings(doc);
  if (!settings.ok) {
    for (const p of settings.error) {
      // Attribute each problem to the annotation that wrote the deepest matching path.
      const path = p.path.map(String);
      let annotation = '';
      for (let n = path.length; n > 0 && !annotation; n--) annotation = owner.get(path.slice(0, n).join('.')) ?? '';
      problems.push({ annotation: annotation || ANNOTATION_PREFIX + path[0], message: `${formatPath(p.path)}: ${p.message}` });
    }
  }
  let routes = defaultRoutes(serviceName, portNames[0]!);
  if (routesText !== undefined) {
    let raw: unknown;
    try {
      raw = parse(routesText, { logLevel: 'error' });
    } catch (e) {
      problems.push({ annotation: ROUTES_ANNOTATION, message: `not valid YAML/JSON: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}` });
    }
    if (raw !== undefined) {
      const r = validateRoutes(raw, portNames);
      if (r.ok) routes = r.value;
      else for (const p of r.error) problems.push({ annotation: ROUTES_ANNOTATION, message: `${formatPath(p.path)}: ${p.message}` });
    }
  }
  if (problems.length > 0 || !settings.ok) return { problems };
  const shed = playbookRouteProblems(settings.value, routes);
  if (shed.length > 0) return { problems: shed.map((p) => ({ annotation: `${ANNOTATION_PREFIX}playbooks`, message: `${formatPath(p.path)}: ${p.message}` })) };
  return { settings: settings.value, routes };
}
