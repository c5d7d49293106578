import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for the Kubernetes API server, for tests: real HTTP on loopback, used by the real
 * @kubernetes/client-node clients and informers, following the documented wire behaviour:
 * - list: `{kind: XList, metadata: {resourceVersion}, items}`, with labelSelector (=, ==, !=, in, notin, exists,
 *   !exists)
 *   and fieldSelector (metadata.name, metadata.namespace; others are refused with 400, as the API server does);
 *   with `limit`, pages in key order (namespace, name) from one snapshot: `metadata.continue` and
 *   `remainingItemCount` while more remain, every page carrying the snapshot's resourceVersion; a `continue`
 *   token older than the retained history (see compact) gets 410 Gone with reason Expired;
 * - watch (`?watch=true&resourceVersion=N`): newline-delimited `{type, object}` for every change after N, kept
 *   open; a version older than the retained history gets HTTP 410 (or, if asked, an ERROR event with code 410);
 * - create, get, replace (409 on a stale `metadata.resourceVersion`), merge patch, delete;
 * - the `scale` subresource of Deployments (autoscaling/v1 Scale) and Leases, Events, ConfigMaps, Pods.
 * Faults can be injected: failing requests (e.g. 500), dropped watches, slow responses, compaction.
 */
export interface ApiServerStandIn {
  readonly url: string;
  /** Creates or replaces an object (with `kind`) as a controller would, outside HTTP; returns it with its new version. */
  apply(obj: object): KubeObject;
  /** Deletes an object outside HTTP. */
  remove(resource: string, namespace: string, name: string): void;
  get(resource: string, namespace: string, name: string): KubeObject | undefined;
  list(resource: string): KubeObject[];
  /** The next `count` requests whose path and query match `match` get `status` with a Status body. */
  failNext(match: RegExp, count: number, status?: number): void;
  /** Closes every open watch (as a load balancer or an API server restart would). */
  dropWatches(): void;
  /** Delays every response by `ms` from now on (0 to stop). */
  slow(ms: number): void;
  /** Forgets event history: a watch resuming from a version older than the current one gets 410 Gone. */
  compact(): void;
  /** How 410 is told: an HTTP status (default), or a 200 watch carrying an ERROR event. */
  goneAs(mode: 'http' | 'event'): void;
  /** Requests seen, as `METHOD path?query`, for asserting the calls the code makes. */
  readonly requests: string[];
  openWatches(): number;
  close(): Promise<void>;
}

/** A Kubernetes object as JSON. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string>; uid?: string; [k: string]: unknown };
  [k: string]: unknown;
}

interface ResourceInfo {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
}

const RESOURCES: Record<string, ResourceInfo> = {
  services: { group: '', version: 'v1', kind: 'Service' },
  pods: { group: '', version: 'v1', kind: 'Pod' },
  configmaps: { group: '', version: 'v1', kind: 'ConfigMap' },
  events: { group: '', version: 'v1', kind: 'Event' },
  endpointslices: { group: 'discovery.k8s.io', version: 'v1', kind: 'EndpointSlice' },
  deployments: { group: 'apps', version: 'v1', kind: 'Deployment' },
  leases: { group: 'coordination.k8s.io', version: 'v1', kind: 'Lease' },
};

function resourceOfKind(kind: string): string {
  const r = Object.entries(RESOURCES).find(([, i]) => i.kind === kind);
  if (!r) throw new Error(`stand-in API server does not serve kind ${kind}`);
  return r[0];
}

interface WatchEvent {
  rv: number;
  resource: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: KubeObject;
}

interface Watcher {
  resource: string;
  namespace: string | undefined;
  selector: (obj: KubeObject) => boolean;
  res: http.ServerResponse;
}

function parseSelector(text: string | null): (labels: Record<string, string>) => boolean {
  if (!text) return () => true;
  // Commas also separate the values of a set: split only outside parentheses.
  const terms = text.split(/,(?![^(]*\))/).map((t) => t.trim()).filter(Boolean).map((t) => {
    const set = /^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(t);
    if (set) {
      const values = set[3]!.split(',').map((v) => v.trim());
      return set[2] === 'in' ? (l: Record<string, string>) => values.includes(l[set[1]!]!) : (l: Record<string, string>) => !values.includes(l[set[1]!]!);
    }
    let m = /^([^!=]+)!=(.*)$/.exec(t);
    if (m) return (l: Record<string, string>) => l[m![1]!.trim()] !== m![2]!.trim();
    m = /^([^!=]+)==?(.*)$/.exec(t);
    if (m) return (l: Record<string, string>) => l[m![1]!.trim()] === m![2]!.trim();
    if (t.startsWith('!')) return (l: Record<string, string>) => !(t.slice(1) in l);
    return (l: Record<string, string>) => t in l;
  });
  return (labels) => terms.every((f) => f(labels));
}

/** Field selectors the API server supports on every resource: metadata.name and metadata.namespace. */
function parseFieldSelector(text: string | null): ((obj: KubeObject) => boolean) | string {
  if (!text) return () => true;
  const terms: ((o: KubeObject) => boolean)[] = [];
  for (const t of text.split(',').map((x) => x.trim()).filter(Boolean)) {
    const m = /^(metadata\.name|metadata\.namespace)(!=|==|=)(.*)$/.exec(t);
    if (!m) return `"${t.split(/!?=/)[0]}" is not a known field selector: only "metadata.name", "metadata.namespace"`;
    const get = (o: KubeObject) => (m[1] === 'metadata.name' ? o.metadata.name : o.metadata.namespace ?? '');
    terms.push(m[2] === '!=' ? (o) => get(o) !== m[3] : (o) => get(o) === m[3]);
  }
  return (o) => terms.every((f) => f(o));
}

function status(res: http.ServerResponse, code: number, reason: string, message: string): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message, reason, code }));
}

function mergePatch(target: any, patch: any): any {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** Starts the stand-in on an ephemeral loopback port. */
export async function startApiServer(): Promise<ApiServerStandIn> {
  let rv = 100;
  let oldestRetained = rv;
  const objects = new Map<string, KubeObject>();
  let history: WatchEvent[] = [];
  // Paged lists in progress: token → the snapshot's remaining items and its resourceVersion.
  const pages = new Map<string, { items: KubeObject[]; rv: number }>();
  let nextToken = 0;
  const watchers = new Set<Watcher>();
  const faults: { match: RegExp; count: number; status: number }[] = [];
  const requests: string[] = [];
  let delayMs = 0;
  let gone: 'http' | 'event' = 'http';
  let uid = 0;

  const key = (resource: string, ns: string, name: string) => `${resource}/${ns}/${name}`;

  const record = (resource: string, type: WatchEvent['type'], object: KubeObject) => {
    const ev = { rv: Number(object.metadata.resourceVersion), resource, type, object };
    history.push(ev);
    for (const w of watchers) {
      if (w.resource === resource && (w.namespace === undefined || w.namespace === object.metadata.namespace) && w.selector(object)) {
        w.res.write(JSON.stringify({ type, object }) + '\n');
      }
    }
  };

  const store = (resource: string, obj: KubeObject, expectedRv?: string): { stored: KubeObject } | { conflict: string } => {
    const info = RESOURCES[resource]!;
    const ns = obj.metadata.namespace ?? '';
    const k = key(resource, ns, obj.metadata.name);
    const old = objects.get(k);
    if (expectedRv !== undefined && old && old.metadata.resourceVersion !== expectedRv) {
      return { conflict: `Operation cannot be fulfilled on ${resource} "${obj.metadata.name}": the object has been modified; please apply your changes to the latest version and try again` };
    }
    const next: KubeObject = JSON.parse(JSON.stringify(obj));
    next.apiVersion = info.group ? `${info.group}/${info.version}` : info.version;
    next.kind = info.kind;
    next.metadata.resourceVersion = String(++rv);
    next.metadata.uid = old?.metadata.uid ?? `uid-${++uid}`;
    objects.set(k, next);
    record(resource, old ? 'MODIFIED' : 'ADDED', next);
    return { stored: next };
  };

  const removeObject = (resource: string, ns: string, name: string): KubeObject | undefined => {
    const k = key(resource, ns, name);
    const old = objects.get(k);
    if (!old) return undefined;
    objects.delete(k);
    const gone: KubeObject = { ...old, metadata: { ...old.metadata, resourceVersion: String(++rv) } };
    record(resource, 'DELETED', gone);
    return gone;
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    const fault = faults.find((f) => f.count > 0 && f.match.test(`${url.pathname}${url.search}`));
    if (fault) {
      fault.count--;
      return status(res, fault.status, 'InternalError', 'injected fault');
    }
    const m = /^\/(?:api\/v1|apis\/([^/]+)\/([^/]+))(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(url.pathname);
    const resource = m?.[4];
    if (!m || !resource || !RESOURCES[resource]) return status(res, 404, 'NotFound', `the server could not find the requested resource (${url.pathname})`);
    const ns = m[3];
    const name = m[5];
    const sub = m[6];
    const body = await new Promise<string>((resolve) => {
      let b = '';
      req.on('data', (d) => (b += d));
      req.on('end', () => resolve(b));
    });
    const parse = (): KubeObject | undefined => {
      try {
        return JSON.parse(body) as KubeObject;
      } catch {
        status(res, 400, 'BadRequest', 'body is not JSON');
        return undefined;
      }
    };
    const send = (code: number, obj: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(obj));
    };
    const info = RESOURCES[resource]!;
    const labels = parseSelector(url.searchParams.get('labelSelector'));
    const fields = parseFieldSelector(url.searchParams.get('fieldSelector'));
    if (typeof fields === 'string') return status(res, 400, 'BadRequest', fields);
    const selector = (o: KubeObject) => labels(o.metadata.labels ?? {}) && fields(o);

    if (sub === 'scale' && resource === 'deployments' && name && ns) {
      const d = objects.get(key(resource, ns, name));
      if (!d) return status(res, 404, 'NotFound', `deployments.apps "${name}" not found`);
      const scaleOf = (dep: KubeObject) => ({
        kind: 'Scale', apiVersion: 'autoscaling/v1',
        metadata: { name, namespace: ns, resourceVersion: dep.metadata.resourceVersion, uid: dep.metadata.uid },
        spec: { replicas: (dep['spec'] as any)?.replicas ?? 1 },
        status: { replicas: (dep['status'] as any)?.replicas ?? 0, selector: '' },
      });
      if (req.method === 'GET') return send(200, scaleOf(d));
      if (req.method === 'PUT' || req.method === 'PATCH') {
        if (req.method === 'PATCH' && !String(req.headers['content-type']).includes('merge-patch')) {
          return status(res, 415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json (got ${req.headers['content-type']})`);
        }
        const s = parse();
        if (!s) return;
        const replicas = (s as any).spec?.replicas;
        if (!Number.isInteger(replicas) || replicas < 0) return status(res, 422, 'Invalid', 'spec.replicas: Invalid value: must be a non-negative integer');
        const expected = req.method === 'PUT' ? s.metadata?.resourceVersion : undefined;
        const out = store(resource, { ...d, spec: { ...(d['spec'] as object), replicas } }, expected);
        if ('conflict' in out) return status(res, 409, 'Conflict', out.conflict);
        return send(200, scaleOf(out.stored));
      }
      return status(res, 405, 'MethodNotAllowed', `${req.method} not allowed on scale`);
    }

    if (req.method === 'GET' && !name && url.searchParams.get('watch') === 'true') {
      const from = Number(url.searchParams.get('resourceVersion') ?? '0');
      if (from < oldestRetained) {
        if (gone === 'http') return status(res, 410, 'Expired', `too old resource version: ${from} (${oldestRetained})`);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410, message: `too old resource version: ${from}` } }) + '\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      const w: Watcher = { resource, namespace: ns, selector, res };
      for (const ev of history) {
        if (ev.rv > from && ev.resource === resource && (ns === undefined || ev.object.metadata.namespace === ns) && selector(ev.object)) {
          res.write(JSON.stringify({ type: ev.type, object: ev.object }) + '\n');
        }
      }
      watchers.add(w);
      const done = () => watchers.delete(w);
      res.on('close', done);
      req.on('close', done);
      return;
    }
    if (req.method === 'GET' && !name) {
      const list = (items: KubeObject[], metadata: Record<string, unknown>) =>
        send(200, { kind: `${info.kind}List`, apiVersion: info.group ? `${info.group}/${info.version}` : info.version, metadata, items });
      const limit = Number(url.searchParams.get('limit') ?? '0');
      const token = url.searchParams.get('continue');
      let snapshot: { items: KubeObject[]; rv: number };
      if (token) {
        const held = pages.get(token);
        pages.delete(token);
        if (!held || held.rv < oldestRetained) return status(res, 410, 'Expired', 'The provided continue parameter is too old to display a consistent list result.');
        snapshot = held;
      } else {
        const items = [...objects.entries()]
          .filter(([k, o]) => k.startsWith(`${resource}/`) && (ns === undefined || o.metadata.namespace === ns) && selector(o))
          .map(([, o]) => o)
          .sort((a, b) => `${a.metadata.namespace ?? ''}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace ?? ''}/${b.metadata.name}`));
        if (!(limit > 0)) return list(items, { resourceVersion: String(rv) });
        snapshot = { items, rv };
      }
      const page = limit > 0 ? snapshot.items.slice(0, limit) : snapshot.items;
      const rest = snapshot.items.slice(page.length);
      if (rest.length === 0) return list(page, { resourceVersion: String(snapshot.rv) });
      const next = `page-${++nextToken}`;
      pages.set(next, { items: rest, rv: snapshot.rv });
      return list(page, { resourceVersion: String(snapshot.rv), continue: next, remainingItemCount: rest.length });
    }
    if (req.method === 'GET' && name) {
      const o = objects.get(key(resource, ns ?? '', name));
      return o ? send(200, o) : status(res, 404, 'NotFound', `${resource} "${name}" not found`);
    }
    if (req.method === 'POST' && !name) {
      const o = parse();
      if (!o) return;
      if (!o.metadata?.name && (o.metadata as any)?.generateName) o.metadata.name = `${(o.metadata as any).generateName}${(++uid).toString(36)}`;
      if (!o.metadata?.name) return status(res, 422, 'Invalid', 'metadata.name: Required value');
      o.metadata.namespace = ns ?? o.metadata.namespace;
      if (objects.has(key(resource, o.metadata.namespace ?? '', o.metadata.name))) return status(res, 409, 'AlreadyExists', `${resource} "${o.metadata.name}" already exists`);
      const created = store(resource, o);
      return 'stored' in created ? send(201, created.stored) : status(res, 409, 'Conflict', created.conflict);
    }
    if ((req.method === 'PUT' || req.method === 'PATCH') && name) {
      const old = objects.get(key(resource, ns ?? '', name));
      if (!old) return status(res, 404, 'NotFound', `${resource} "${name}" not found`);
      const o = parse();
      if (!o) return;
      const next = req.method === 'PUT' ? o : (mergePatch(old, o) as KubeObject);
      next.metadata = { ...next.metadata, name, namespace: ns ?? '' };
      const out = store(resource, next, req.method === 'PUT' ? o.metadata?.resourceVersion : undefined);
      if ('conflict' in out) return status(res, 409, 'Conflict', out.conflict);
      return send(200, out.stored);
    }
    if (req.method === 'DELETE' && name) {
      const gone = removeObject(resource, ns ?? '', name);
      return gone ? send(200, gone) : status(res, 404, 'NotFound', `${resource} "${name}" not found`);
    }
    return status(res, 405, 'MethodNotAllowed', `${req.method} ${url.pathname}`);
  };

  const server = http.createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    requests,
    apply(o) {
      const obj = o as KubeObject;
      const out = store(resourceOfKind(obj.kind!), obj);
      if ('conflict' in out) throw new Error(out.conflict);
      return out.stored;
    },
    remove: (resource, namespace, name) => void removeObject(resource, namespace, name),
    get: (resource, namespace, name) => objects.get(key(resource, namespace, name)),
    list: (resource) => [...objects.entries()].filter(([k]) => k.startsWith(`${resource}/`)).map(([, o]) => o),
    failNext: (match, count, code = 500) => void faults.push({ match, count, status: code }),
    dropWatches() {
      for (const w of watchers) w.res.destroy();
      watchers.clear();
    },
    slow: (ms) => void (delayMs = ms),
    compact() {
      history = [];
      oldestRetained = rv;
    },
    goneAs: (mode) => void (gone = mode),
    openWatches: () => watchers.size,
    close: () =>
      new Promise((resolve) => {
        for (const w of watchers) w.res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
