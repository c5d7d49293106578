import { expect } from 'chai';
import { DEFAULT_LISTENER } from '../../../src/model/model.js';
import { createMemoryLogger } from '../../../src/observability/log.js';
import { createEventRecorder } from '../../../src/sources/kubernetes/events.js';
import { createKubernetesSource, type KubernetesSource } from '../../../src/sources/kubernetes/source.js';
import { TypeUrl } from '../../../src/xds/resources.js';
import { accessCalls } from '../../../src/sources/kubernetes/access.js';
import { startApiServer, type ApiServerStandIn } from '../../support/apiserver.js';
import { eventually, startHarness, type Harness } from '../../support/harness.js';
import { callOf, kubeConfigFor, service, slice } from '../../support/kube.js';
import { sentBeforeProbe } from '../../support/probe.js';
import type { RecordingXdsClient, SeenResponse } from '../../support/xds-client.js';

const EDS = 'ml/llama/http';

/** `group/resource/verb` of a request in the stand-in's log. */
const hosts = (r: SeenResponse) =>
  (r.resources.find((x) => x.name === EDS)?.value['endpoints'] ?? []).flatMap((l: any) => l.lb_endpoints.map((e: any) => `${e.endpoint.address.socket_address.address}:${e.health_status}`)).sort();

interface K8sHarness {
  api: ApiServerStandIn;
  h: Harness;
  source: KubernetesSource;
  log: ReturnType<typeof createMemoryLogger>;
  stop(): Promise<void>;
}

async function startK8s(api: ApiServerStandIn): Promise<K8sHarness> {
  const h = await startHarness();
  const log = createMemoryLogger();
  const kc = kubeConfigFor(api.url);
  const source = createKubernetesSource({
    kubeConfig: kc, namespaces: [], listener: DEFAULT_LISTENER, log, events: createEventRecorder(kc, log, 'test'),
    onModel: (m, endpointsOnly) => void h.publisher.publish(m, endpointsOnly),
    holdOffMs: 10, maxDelayMs: 100, backoffInitialMs: 20, backoffMaxMs: 200,
  });
  source.start();
  return { api, h, source, log, stop: async () => { await source.stop(); await h.stop(); } };
}

/** Subscribes to the EDS resource and ACKs every response, as Envoy would. */
function edsClient(h: Harness, id = 'envoy'): RecordingXdsClient {
  const c = h.client('sotw');
  c.send({ node: { id }, type_url: TypeUrl.Endpoint, resource_names: [EDS] });
  let acked = 0;
  const tick = setInterval(() => {
    for (; acked < c.responses.length; acked++) {
      const r = c.responses[acked]!;
      c.send({ type_url: r.typeUrl, version_info: r.versionInfo, response_nonce: r.nonce, resource_names: [EDS] });
    }
  }, 5);
  const close = c.close.bind(c);
  c.close = () => {
    clearInterval(tick);
    close();
  };
  return c;
}

describe('Kubernetes discovery through the API-server stand-in (real client-node informers)', () => {
  let api: ApiServerStandIn;
  let k: K8sHarness;
  beforeEach(async () => {
    api = await startApiServer();
    api.apply(service('ml', 'llama'));
    api.apply(slice('ml', 'llama', 'llama-a', [{ address: '10.0.0.1', zone: 'z1' }, { address: '10.0.0.2', ready: false }]));
    api.apply(service('ml', 'unlabelled', { labels: {} }));
    k = await startK8s(api);
    await eventually(() => k.h.publisher.ready(), 'first snapshot');
  });
  afterEach(async () => {
    await k.stop();
    await api.close();
  });

  it('serves only labelled Services, once every informer has listed', () => {
    expect(k.source.synced()).to.equal(true);
    const eds = k.h.cache.get('default')!.types[TypeUrl.Endpoint];
    expect([...eds.resources.keys()]).to.deep.equal([EDS]);
  });

  it('a pod becoming ready appears; a terminating one drains, then goes', async () => {
    const c = edsClient(k.h);
    expect(hosts(await c.next())).to.deep.equal(['10.0.0.1:HEALTHY']);
    api.apply(slice('ml', 'llama', 'llama-a', [{ address: '10.0.0.1', zone: 'z1' }, { address: '10.0.0.2' }]));
    await c.next((r) => hosts(r).length === 2);
    api.apply(slice('ml', 'llama', 'llama-a', [{ address: '10.0.0.1', zone: 'z1', ready: false, serving: true, terminating: true }, { address: '10.0.0.2' }]));
    expect(hosts(await c.next((r) => hosts(r).includes('10.0.0.1:DRAINING')))).to.deep.equal(['10.0.0.1:DRAINING', '10.0.0.2:HEALTHY']);
    const from = c.responses.length;
    api.apply(slice('ml', 'llama', 'llama-a', [{ address: '10.0.0.2' }]));
    expect(hosts(await c.next((r) => hosts(r).length === 1, from))).to.deep.equal(['10.0.0.2:HEALTHY']);
    // Endpoint changes took the fast path: clusters, listeners and routes kept their versions.
    expect(await k.h.metrics.value('inferplane_snapshots_total', { result: 'fast-path' })).to.be.greaterThan(0);
  });

  it('keeps serving the last known endpoints while the API server fails, then applies the true difference', async () => {
    const c = edsClient(k.h);
    await c.next();
    api.failNext(/endpointslices/, 6, 500);
    api.dropWatches();
    await eventually(() => k.log.lines.some((l) => l.msg.startsWith('informer failed')), 'the informer failure is logged');
    api.apply(slice('ml', 'llama', 'llama-a', [{ address: '10.0.0.1', zone: 'z1' }, { address: '10.0.0.2' }, { address: '10.0.0.3' }]));
    await c.next((r) => hosts(r).length === 3, 0, 10_000);
    expect(c.responses.every((r) => hosts(r).length > 0), 'never an empty assignment').to.equal(true);
  });

  for (const mode of ['http', 'event'] as const) {
    it(`relists after 410 Gone (${mode}) with no spurious removals`, async () => {
      const c = edsClient(k.h);
      await c.next();
      const before = k.h.cache.get('default')!.version;
      api.goneAs(mode);
      // Changes elsewhere move the store on; compaction then makes the informers' versions too old.
      api.apply({ kind: 'ConfigMap', metadata: { name: 'other', namespace: 'ml' } });
      api.compact();
      api.dropWatches();
      await eventually(() => api.requests.filter((r) => r.startsWith('GET /apis/discovery.k8s.io/v1/endpointslices?') && !r.includes('watch=true')).length >= 2, 'a relist of the slices');
      await eventually(() => api.openWatches() >= 2, 'watches re-established');
      expect(await sentBeforeProbe(c, c.responses.length)).to.deep.equal([]);
      expect(k.h.cache.get('default')!.version).to.equal(before);
      api.apply(slice('ml', 'llama', 'llama-b', [{ address: '10.0.0.9' }]));
      expect(hosts(await c.next((r) => hosts(r).length === 2))).to.deep.equal(['10.0.0.1:HEALTHY', '10.0.0.9:HEALTHY']);
    });
  }

  it('reports an invalid annotation as an Event and keeps the last good settings', async () => {
    api.apply(service('ml', 'llama', { annotations: { 'inferplane.io/timeout': '30s' } }));
    const routeTimeout = () => k.h.cache.get('default')!.types[TypeUrl.Route].resources.get('ingress')?.source ?? '';
    await eventually(() => routeTimeout().includes('"timeout":{"seconds":"30"}'), 'the 30s timeout is served');
    api.apply(service('ml', 'llama', { annotations: { 'inferplane.io/timeout': 'thirty seconds' } }));
    await eventually(() => api.list('events').length > 0, 'an Event');
    const ev = api.list('events')[0]! as any;
    expect(ev.involvedObject).to.include({ kind: 'Service', namespace: 'ml', name: 'llama' });
    expect(ev.reason).to.equal('InvalidAnnotation');
    expect(ev.type).to.equal('Warning');
    expect(ev.message).to.contain('inferplane.io/timeout: timeout: "thirty seconds" is not a duration');
    expect(routeTimeout()).to.include('"timeout":{"seconds":"30"}');
    expect(k.h.cache.get('default')!.types[TypeUrl.Endpoint].resources.has(EDS)).to.equal(true);
    // Every call the code made is in the one list the RBAC is checked against, and every listed call was made.
    const made = new Set(api.requests.map(callOf));
    expect([...made].sort()).to.deep.equal(accessCalls({ component: 'discovery' }));
  });

  it('serves a canary from its annotation, and reports one to a missing Service as an Event without dropping the rest (API-server stand-in)', async () => {
    const routeSource = () => k.h.cache.get('default')!.types[TypeUrl.Route].resources.get('ingress')?.source ?? '';
    api.apply(service('ml', 'llama-v2', {}));
    api.apply(slice('ml', 'llama-v2', 'llama-v2-a', [{ address: '10.0.0.2' }]));
    api.apply(service('ml', 'llama', { annotations: { 'inferplane.io/canary': '{service: ml/llama-v2, weight: 10}' } }));
    await eventually(() => routeSource().includes('"weighted_clusters"') && routeSource().includes('"name":"ml/llama-v2/http","weight":{"value":10000}'), 'the canary is served');
    const before = api.list('events').length;
    api.apply(service('ml', 'llama', { annotations: { 'inferplane.io/canary': '{service: ml/llama-v9, weight: 10}', 'inferplane.io/timeout': '45s' } }));
    await eventually(() => api.list('events').some((e: any) => e.reason === 'VariantProblem'), 'a VariantProblem Event');
    const ev = api.list('events').slice(before).find((e: any) => e.reason === 'VariantProblem') as any;
    expect(ev.involvedObject).to.include({ kind: 'Service', namespace: 'ml', name: 'llama' });
    expect(ev.message).to.equal('inferplane.io/canary: no service "ml/llama-v9" is served; not served');
    await eventually(() => routeSource().includes('"timeout":{"seconds":"45"}'), 'the rest of the settings are served');
    expect(routeSource()).not.to.include('weighted_clusters');
    api.remove('services', 'ml', 'llama-v2');
  });

  it('reads a playbook from its annotation: a fallback to a missing Service is a VariantProblem (the rest of the playbook kept), an unknown shed route an InvalidAnnotation (API-server stand-in)', async () => {
    const playbooks = () => k.h.publisher.model()?.services.find((s) => s.name === 'ml/llama')?.settings.playbooks;
    const routes = JSON.stringify([{ name: 'batch', prefix: '/', headers: { 'x-model': 'llama', 'x-priority': 'batch' } }, { name: 'core', prefix: '/', headers: { 'x-model': 'llama' } }]);
    const before = api.list('events').length;
    api.apply(service('ml', 'llama', { annotations: { 'inferplane.io/routes': routes, 'inferplane.io/playbooks': 'emergency: { timeout: 5s, shed: [batch], fallback: ml/llama-tiny }' } }));
    await eventually(() => api.list('events').slice(before).some((e: any) => e.reason === 'VariantProblem'), 'a VariantProblem Event');
    expect((api.list('events').slice(before).find((e: any) => e.reason === 'VariantProblem') as any).message).to.equal('inferplane.io/playbooks: emergency.fallback: no service "ml/llama-tiny" is served; not served');
    await eventually(() => playbooks()?.emergency?.timeoutMs === 5_000, 'the playbook served');
    expect(playbooks()!.emergency).to.include({ fallback: null }).and.deep.include({ shed: ['batch'] });
    const mid = api.list('events').length;
    api.apply(service('ml', 'llama', { annotations: { 'inferplane.io/routes': routes, 'inferplane.io/playbooks': 'emergency: { timeout: 9s, shed: [embeddings] }' } }));
    await eventually(() => api.list('events').slice(mid).some((e: any) => e.reason === 'InvalidAnnotation'), 'an InvalidAnnotation Event');
    expect((api.list('events').slice(mid).find((e: any) => e.reason === 'InvalidAnnotation') as any).message).to.contain('inferplane.io/playbooks: playbooks.emergency.shed[0]: no route named "embeddings" in this service (named routes: batch, core)');
    expect(playbooks()!.emergency!.timeoutMs, 'the last good settings kept').to.equal(5_000);
  });

  it('removes a deleted Service', async () => {
    api.remove('services', 'ml', 'llama');
    await eventually(() => !k.h.cache.get('default')!.types[TypeUrl.Cluster].resources.has(EDS), 'the cluster is gone');
  });

  it('gives byte-identical versions on two replicas watching the same API server', async () => {
    const other = await startK8s(api);
    try {
      await eventually(() => other.h.publisher.ready(), 'second replica ready');
      api.apply(slice('ml', 'llama', 'llama-b', [{ address: '10.0.0.7', zone: 'z2' }]));
      const same = () => {
        const a = k.h.cache.get('default')!;
        const b = other.h.cache.get('default')!;
        return a.types[TypeUrl.Endpoint].resources.get(EDS)!.source.includes('10.0.0.7') && a.version === b.version;
      };
      await eventually(same, 'both replicas at the same version');
      const a = k.h.cache.get('default')!;
      const b = other.h.cache.get('default')!;
      for (const t of Object.values(TypeUrl)) {
        for (const [name, r] of a.types[t].resources) expect(Buffer.from(r.bytes).equals(Buffer.from(b.types[t].resources.get(name)!.bytes)), name).to.equal(true);
      }
    } finally {
      await other.stop();
    }
  });

  it('lists in pages (limit and continue) and serves every service of every page', async () => {
    for (let i = 0; i < 5; i++) {
      api.apply(service('ml', `paged-${i}`));
      api.apply(slice('ml', `paged-${i}`, `paged-${i}-a`, [{ address: `10.1.0.${i + 1}` }]));
    }
    const log = createMemoryLogger();
    const kc = kubeConfigFor(api.url);
    const h = await startHarness();
    const source = createKubernetesSource({
      kubeConfig: kc, namespaces: [], listener: DEFAULT_LISTENER, log, events: createEventRecorder(kc, log, 'test'),
      onModel: (m, endpointsOnly) => void h.publisher.publish(m, endpointsOnly), holdOffMs: 10, maxDelayMs: 100, listPageSize: 2,
    });
    const before = api.requests.length;
    source.start();
    try {
      await eventually(() => h.publisher.ready(), 'first snapshot');
      const clusters = [...h.cache.get('default')!.types[TypeUrl.Cluster].resources.keys()].sort();
      expect(clusters).to.deep.equal(['ml/llama/http', ...Array.from({ length: 5 }, (_, i) => `ml/paged-${i}/http`)]);
      const lists = api.requests.slice(before).filter((r) => r.startsWith('GET /apis/discovery.k8s.io/v1/endpointslices?') && !r.includes('watch=true'));
      expect(lists.length).to.equal(3); // 6 slices, 2 per page
      expect(lists.every((r) => r.includes('limit=2'))).to.equal(true);
      expect(lists.slice(1).every((r) => r.includes('continue='))).to.equal(true);
    } finally {
      await source.stop();
      await h.stop();
    }
  });
});

describe('Kubernetes discovery readiness', () => {
  it('is not ready, and serves nothing, until every informer has listed', async () => {
    const api = await startApiServer();
    api.apply(service('ml', 'llama'));
    api.apply(slice('ml', 'llama', 'llama-a', [{ address: '10.0.0.1' }]));
    api.failNext(/endpointslices/, 3, 500);
    const k = await startK8s(api);
    try {
      await eventually(() => k.log.lines.some((l) => l.msg.startsWith('informer failed')), 'the failing list is logged');
      expect(k.source.synced()).to.equal(false);
      expect(k.h.publisher.ready()).to.equal(false);
      await eventually(() => k.h.publisher.ready(), 'ready after the list succeeds', 10_000);
      expect([...k.h.cache.get('default')!.types[TypeUrl.Endpoint].resources.keys()]).to.deep.equal([EDS]);
    } finally {
      await k.stop();
      await api.close();
    }
  });
});
