import { CoreV1Api, DiscoveryV1Api, type KubeConfig, type V1EndpointSlice, type V1Service } from '@kubernetes/client-node';
import type { ListenerSpec, Model, PlaybookMode, Service } from '../../model/model.js';
import { formatPath, routeConflictsSteps, variantProblemsSteps, type VariantSetting } from '../../model/validate.js';
import type { Logger } from '../../observability/log.js';
import { ANNOTATION_PREFIX, readAnnotations } from './annotations.js';
import { mergeSlices, SERVICE_NAME_LABEL, serviceKey, servicePorts } from './endpointslices.js';
import type { EventRecorder } from './events.js';
import { createSupervisedInformer, LIST_PAGE_SIZE, listAllPages, type SupervisedInformer } from './informer.js';
import { createDebouncer, realTimers, type Timers } from './timers.js';
import { runStepsAsync, type Steps } from '../../steps.js';

import { DEFAULT_DEBOUNCE, DEFAULT_SERVICE_SELECTOR } from '../../config/defaults.js';
export { DEFAULT_DEBOUNCE, DEFAULT_SERVICE_SELECTOR };

/** Options of {@link createKubernetesSource}. */
export interface KubernetesSourceOptions {
  readonly kubeConfig: KubeConfig;
  /** Namespaces to watch; empty means all. */
  readonly namespaces: readonly string[];
  /** Label selector on Services (default {@link DEFAULT_SERVICE_SELECTOR}). */
  readonly serviceSelector?: string;
  readonly listener: ListenerSpec;
  readonly log: Logger;
  readonly events: EventRecorder;
  /**
   * Called with each new model, never before every informer has completed its first list. `endpointsOnly`,
   * when given, names the only services whose endpoints changed (nothing else did): the endpoint fast path.
   */
  /** `eventAt`: when the first event this model answers was seen (the source's clock, epoch ms). */
  readonly onModel: (model: Model, endpointsOnly: ReadonlySet<string> | undefined, eventAt: number | undefined) => void;
  readonly timers?: Timers;
  /** Quiet time that ends a burst of events (default {@link DEFAULT_DEBOUNCE}). */
  readonly holdOffMs?: number;
  /** Longest an event waits to be applied, however long the burst (default {@link DEFAULT_DEBOUNCE}). */
  readonly maxDelayMs?: number;
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /** Objects per page when listing (default {@link LIST_PAGE_SIZE}). */
  readonly listPageSize?: number;
  readonly maxWatchMs?: number;
}

/** A running Kubernetes source. */
export interface KubernetesSource {
  start(): void;
  stop(): Promise<void>;
  /** True once every informer has listed once (and so a model may be served). */
  synced(): boolean;
}

/**
 * Whether two lists hold the same EndpointSlices, in any order: the same objects (the informer keeps an
 * unchanged object), or after a relist the same name at the same resourceVersion. Run for every service on
 * every rebuild, so it builds nothing.
 */
function sameSlices(a: readonly V1EndpointSlice[], b: readonly V1EndpointSlice[]): boolean {
  if (a.length !== b.length) return false;
  return b.every((s) => a.includes(s) || a.some((p) => p.metadata?.name === s.metadata?.name && p.metadata?.resourceVersion === s.metadata?.resourceVersion));
}

/**
 * Watches Services (by label, in the given namespaces) and their EndpointSlices, and turns them into models.
 * Per-service settings come from `inferplane.io/*` annotations; a service whose annotations are invalid keeps
 * its last good settings (a new one is not served until they are fixed), and the problem is logged and
 * recorded as an Event on the Service. Bursts of events are debounced; when only EndpointSlices changed, only
 * the affected services are rebuilt and the caller is told so.
 */
export function createKubernetesSource(o: KubernetesSourceOptions): KubernetesSource {
  const timers = o.timers ?? realTimers;
  const core = o.kubeConfig.makeApiClient(CoreV1Api);
  const discovery = o.kubeConfig.makeApiClient(DiscoveryV1Api);
  const selector = o.serviceSelector ?? DEFAULT_SERVICE_SELECTOR;
  const pageSize = o.listPageSize ?? LIST_PAGE_SIZE;
  const scopes = o.namespaces.length === 0 ? [undefined] : [...o.namespaces];
  const changedEndpoints = new Set<string>();
  let structural = true;
  const built = new Map<string, { service: Service; svc: V1Service; slices: readonly V1EndpointSlice[] }>();
  const goodSettings = new Map<string, Pick<Service, 'settings' | 'routes'>>();
  const reported = new Map<string, string>();

  const debouncer = createDebouncer({ holdOffMs: o.holdOffMs ?? DEFAULT_DEBOUNCE.holdOffMs, maxDelayMs: o.maxDelayMs ?? DEFAULT_DEBOUNCE.maxDelayMs, timers, fire: () => rebuild() });
  // The first event not yet carried by a model: the start of the event → publish latency.
  let eventAt: number | undefined;
  const changed = () => {
    eventAt ??= timers.now();
    debouncer.poke();
  };
  const common = { kubeConfig: o.kubeConfig, log: o.log, timers, backoffInitialMs: o.backoffInitialMs, backoffMaxMs: o.backoffMaxMs, maxWatchMs: o.maxWatchMs, onSynced: changed };
  const serviceInformers: SupervisedInformer<V1Service>[] = scopes.map((ns) =>
    createSupervisedInformer<V1Service>({
      ...common,
      name: `services${ns ? ` in ${ns}` : ''}`,
      path: ns ? `/api/v1/namespaces/${ns}/services` : '/api/v1/services',
      labelSelector: selector,
      list: () => listAllPages((cont) => {
        const page = { labelSelector: selector, limit: pageSize, ...(cont && { _continue: cont }) };
        return ns ? core.listNamespacedService({ namespace: ns, ...page }) : core.listServiceForAllNamespaces(page);
      }),
      onChange: () => {
        structural = true;
        changed();
      },
    }));
  const sliceInformers: SupervisedInformer<V1EndpointSlice>[] = scopes.map((ns) =>
    createSupervisedInformer<V1EndpointSlice>({
      ...common,
      name: `endpointslices${ns ? ` in ${ns}` : ''}`,
      path: ns ? `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices` : '/apis/discovery.k8s.io/v1/endpointslices',
      labelSelector: SERVICE_NAME_LABEL,
      list: () => listAllPages((cont) => {
        const page = { labelSelector: SERVICE_NAME_LABEL, limit: pageSize, ...(cont && { _continue: cont }) };
        return ns ? discovery.listNamespacedEndpointSlice({ namespace: ns, ...page }) : discovery.listEndpointSliceForAllNamespaces(page);
      }),
      onChange: (slice) => {
        const owner = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
        if (owner) changedEndpoints.add(serviceKey(slice.metadata?.namespace ?? '', owner));
        changed();
      },
    }));
  const informers = [...serviceInformers, ...sliceInformers];
  const synced = () => informers.every((i) => i.synced());

  const report = (svc: V1Service, key: string, reason: string, problems: readonly string[]) => {
    const text = problems.join('; ');
    if (reported.get(`${key} ${reason}`) === text) return;
    reported.set(`${key} ${reason}`, text);
    if (problems.length === 0) return;
    const msg = reason === 'InvalidAnnotation' ? 'invalid annotation; keeping the last good settings' : reason === 'VariantProblem' ? 'canary or shadow not served' : 'endpoint problem';
    for (const problem of problems) o.log.warn(msg, { service: key, reason, problem });
    void o.events.warn(svc, { apiVersion: 'v1', kind: 'Service' }, reason, text);
  };

  const serviceOf = (svc: V1Service, slices: readonly V1EndpointSlice[]): Service | undefined => {
    const key = serviceKey(svc.metadata?.namespace ?? '', svc.metadata?.name ?? '');
    const { ports } = servicePorts(svc);
    if (ports.length === 0) {
      report(svc, key, 'NoPorts', ['the Service has no TCP ports; not served']);
      return undefined;
    }
    const read = readAnnotations(svc.metadata?.annotations, key, ports.map((p) => p.name));
    let good = goodSettings.get(key);
    if ('problems' in read) {
      report(svc, key, 'InvalidAnnotation', read.problems.map((p) => `${p.annotation}: ${p.message}`));
      if (!good) return undefined;
    } else {
      report(svc, key, 'InvalidAnnotation', []);
      const prev = good;
      good = prev && JSON.stringify(prev) === JSON.stringify(read) ? prev : read;
      goodSettings.set(key, good);
    }
    // Routes that name ports the Service no longer has cannot stand. (Kept as the same array otherwise: the
    // publisher's endpoint fast path recognises unchanged settings and routes by identity.)
    const routes = good.routes.every((r) => ports.some((p) => p.name === r.port)) ? good.routes : good.routes.filter((r) => ports.some((p) => p.name === r.port));
    const merged = mergeSlices(svc, slices);
    report(svc, key, 'EndpointProblem', merged.problems);
    return { name: key, ports, endpoints: merged.endpoints, settings: good.settings, routes };
  };

  // A rebuild of thousands of services runs in slices (src/steps.ts); events during it wait for the next one.
  let rebuilding = false;
  let stopped = false;
  function rebuild(): void {
    if (rebuilding) return debouncer.poke();
    if (!synced()) return; // the first complete list of every informer comes first: no partial truth
    rebuilding = true;
    runStepsAsync(rebuildSteps()).catch((e: unknown) => o.log.error('model rebuild failed; keeping the last model', { error: e instanceof Error ? e.stack ?? e.message : String(e) }));
  }

  function* rebuildSteps(): Steps<void> {
    try {
      yield* buildModel();
    } finally {
      rebuilding = false;
    }
  }

  function* buildModel(): Steps<void> {
    // What this build answers for is taken first: an event arriving while it runs (it yields) waits for the next
    // one, which then knows the service changed. Taken later, an event read into this build's slices but
    // missing from its set would show the next build a changed service it was not told of: a full rebuild.
    const fast = !structural;
    const since = eventAt;
    eventAt = undefined;
    const changedNow = new Set(changedEndpoints);
    changedEndpoints.clear();
    structural = false;
    const slicesBy = new Map<string, V1EndpointSlice[]>();
    for (const inf of sliceInformers) {
      for (const slice of inf.list()) {
        const owner = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
        if (!owner) continue;
        const key = serviceKey(slice.metadata?.namespace ?? '', owner);
        let list = slicesBy.get(key);
        if (!list) slicesBy.set(key, (list = []));
        list.push(slice);
        yield;
      }
    }
    const seen = new Set<string>();
    for (const inf of serviceInformers) {
      for (const svc of inf.list()) {
        const key = serviceKey(svc.metadata?.namespace ?? '', svc.metadata?.name ?? '');
        seen.add(key);
        const slices = slicesBy.get(key) ?? [];
        const prev = built.get(key);
        yield;
        if (prev && prev.svc.metadata?.resourceVersion === svc.metadata?.resourceVersion && sameSlices(prev.slices, slices)) continue;
        const service = serviceOf(svc, slices);
        if (service) built.set(key, { service: prev && JSON.stringify(prev.service) === JSON.stringify(service) ? prev.service : service, svc, slices });
        else built.delete(key);
      }
    }
    yield;
    for (const key of [...built.keys()]) if (!seen.has(key)) built.delete(key);
    for (const key of [...goodSettings.keys()]) if (!seen.has(key)) goodSettings.delete(key);
    let services = [...built.values()].map((b) => b.service).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    yield;
    const conflicts = yield* routeConflictsSteps(services);
    if (conflicts.length > 0) {
      const drop = new Map<string, Set<number>>();
      for (const c of conflicts) {
        const b = built.get(c.service)!;
        report(b.svc, c.service, 'RouteConflict', [`${c.message}; this route is not served`]);
        let set = drop.get(c.service);
        if (!set) drop.set(c.service, (set = new Set()));
        set.add(c.route);
      }
      services = services.map((s) => (drop.has(s.name) ? { ...s, routes: s.routes.filter((_, i) => !drop.get(s.name)!.has(i)) } : s));
    }
    // A canary, shadow or fallback pointing at no served service (or one without the port) is not served:
    // reported on the Service, the rest of its settings kept.
    const variants = yield* variantProblemsSteps(services);
    if (variants.length > 0) {
      const strip = new Map<string, Set<VariantSetting>>();
      for (const v of variants) {
        const where = v.setting.startsWith('playbooks.') ? `playbooks: ${formatPath(v.path.slice(1))}` : v.setting;
        report(built.get(v.service)!.svc, v.service, 'VariantProblem', [`${ANNOTATION_PREFIX}${where}: ${v.message}; not served`]);
        let set = strip.get(v.service);
        if (!set) strip.set(v.service, (set = new Set()));
        set.add(v.setting);
      }
      services = services.map((s) => {
        const set = strip.get(s.name);
        if (!set) return s;
        const playbooks = Object.fromEntries(Object.entries(s.settings.playbooks).map(([m, pb]) => [m, set.has(`playbooks.${m as PlaybookMode}.fallback`) ? { ...pb, fallback: null } : pb]));
        return { ...s, settings: { ...s.settings, ...(set.has('canary') && { canary: null }), ...(set.has('shadow') && { shadow: null }), playbooks } };
      });
    }
    if (!stopped) o.onModel({ listener: o.listener, services }, fast ? changedNow : undefined, since);
  }

  return {
    start() {
      stopped = false;
      for (const i of informers) i.start();
    },
    async stop() {
      stopped = true;
      debouncer.cancel();
      await Promise.all(informers.map((i) => i.stop()));
    },
    synced,
  };
}
