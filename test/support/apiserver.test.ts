import { AppsV1Api, CoordinationV1Api, CoreV1Api, V1MicroTime } from '@kubernetes/client-node';
import { expect } from 'chai';
import { startApiServer, type ApiServerStandIn } from './apiserver.js';
import { kubeConfigFor } from './kube.js';

/** The stand-in is only useful if real clients see documented API-server behaviour: checked here. */
describe('API-server stand-in, through real @kubernetes/client-node API clients', () => {
  let api: ApiServerStandIn;
  beforeEach(async () => (api = await startApiServer()));
  afterEach(() => api.close());

  it('serves the Deployment scale subresource: read, replace with optimistic concurrency (409 when stale), merge patch', async () => {
    api.apply({ kind: 'Deployment', metadata: { name: 'vllm', namespace: 'ml' }, spec: { replicas: 2 } });
    const apps = kubeConfigFor(api.url).makeApiClient(AppsV1Api);
    const scale = await apps.readNamespacedDeploymentScale({ name: 'vllm', namespace: 'ml' });
    expect(scale.spec?.replicas).to.equal(2);
    const updated = await apps.replaceNamespacedDeploymentScale({ name: 'vllm', namespace: 'ml', body: { ...scale, spec: { replicas: 5 } } });
    expect(updated.spec?.replicas).to.equal(5);
    expect((api.get('deployments', 'ml', 'vllm')!['spec'] as any).replicas).to.equal(5);
    const stale = await apps.replaceNamespacedDeploymentScale({ name: 'vllm', namespace: 'ml', body: { ...scale, spec: { replicas: 7 } } }).then(() => 0, (e: { code?: number }) => e.code);
    expect(stale).to.equal(409);
    const res = await fetch(`${api.url}/apis/apps/v1/namespaces/ml/deployments/vllm/scale`, { method: 'PATCH', headers: { 'content-type': 'application/merge-patch+json' }, body: JSON.stringify({ spec: { replicas: 3 } }) });
    expect(res.status).to.equal(200);
    expect((api.get('deployments', 'ml', 'vllm')!['spec'] as any).replicas).to.equal(3);
    const missing = await apps.readNamespacedDeploymentScale({ name: 'nope', namespace: 'ml' }).then(() => 0, (e: { code?: number }) => e.code);
    expect(missing).to.equal(404);
  });

  it('stores Leases with microsecond times and rejects a stale update with 409', async () => {
    const coord = kubeConfigFor(api.url).makeApiClient(CoordinationV1Api);
    const created = await coord.createNamespacedLease({ namespace: 'ml', body: { metadata: { name: 'scaler' }, spec: { holderIdentity: 'a', leaseDurationSeconds: 15, renewTime: new V1MicroTime() } } });
    expect(created.spec?.holderIdentity).to.equal('a');
    expect(String((api.get('leases', 'ml', 'scaler')!['spec'] as any).renewTime)).to.match(/\.\d{6}Z$/);
    await coord.replaceNamespacedLease({ name: 'scaler', namespace: 'ml', body: { ...created, spec: { ...created.spec, holderIdentity: 'b' } } });
    const stale = await coord.replaceNamespacedLease({ name: 'scaler', namespace: 'ml', body: { ...created, spec: { ...created.spec, holderIdentity: 'c' } } }).then(() => 0, (e: { code?: number }) => e.code);
    expect(stale).to.equal(409);
  });

  it('creates Events and lists ConfigMaps by namespace', async () => {
    const core = kubeConfigFor(api.url).makeApiClient(CoreV1Api);
    await core.createNamespacedConfigMap({ namespace: 'ml', body: { metadata: { name: 'policy' }, data: { 'policy.yaml': 'a: 1' } } });
    expect((await core.listNamespacedConfigMap({ namespace: 'ml' })).items.map((c) => c.metadata?.name)).to.deep.equal(['policy']);
    expect((await core.listNamespacedConfigMap({ namespace: 'other' })).items).to.deep.equal([]);
    const ev = await core.createNamespacedEvent({ namespace: 'ml', body: { metadata: { generateName: 'policy.' }, involvedObject: { kind: 'ConfigMap', name: 'policy', namespace: 'ml' }, reason: 'InvalidPolicy', message: 'x', type: 'Warning' } });
    expect(ev.metadata?.name).to.match(/^policy\./);
  });

  it('pages a list from one snapshot (limit, continue, remainingItemCount) and expires a token older than the history', async () => {
    const core = kubeConfigFor(api.url).makeApiClient(CoreV1Api);
    for (const n of ['a', 'b', 'c', 'd', 'e']) api.apply({ kind: 'ConfigMap', apiVersion: 'v1', metadata: { name: n, namespace: 'ml' } });
    const first = await core.listNamespacedConfigMap({ namespace: 'ml', limit: 2 });
    expect(first.items.map((c) => c.metadata?.name)).to.deep.equal(['a', 'b']);
    expect(first.metadata?.remainingItemCount).to.equal(3);
    api.apply({ kind: 'ConfigMap', apiVersion: 'v1', metadata: { name: 'bb', namespace: 'ml' } }); // after the snapshot
    const second = await core.listNamespacedConfigMap({ namespace: 'ml', limit: 2, _continue: first.metadata!._continue! });
    expect(second.items.map((c) => c.metadata?.name)).to.deep.equal(['c', 'd']);
    expect(second.metadata?.resourceVersion).to.equal(first.metadata?.resourceVersion);
    const third = await core.listNamespacedConfigMap({ namespace: 'ml', limit: 2, _continue: second.metadata!._continue! });
    expect(third.items.map((c) => c.metadata?.name)).to.deep.equal(['e']);
    expect(third.metadata?._continue).to.equal(undefined);

    const again = await core.listNamespacedConfigMap({ namespace: 'ml', limit: 2 });
    api.apply({ kind: 'ConfigMap', apiVersion: 'v1', metadata: { name: 'f', namespace: 'ml' } });
    api.compact(); // history now starts after the snapshot's version
    const expired = await core.listNamespacedConfigMap({ namespace: 'ml', limit: 2, _continue: again.metadata!._continue! }).catch((e: { code?: number }) => e);
    expect((expired as { code?: number }).code).to.equal(410);
  });
});
