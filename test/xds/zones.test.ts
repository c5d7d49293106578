import { expect } from 'chai';
import type { Model } from '../../src/model/model.js';
import { formatPath, readModel } from '../../src/model/validate.js';
import { createMemoryLogger } from '../../src/observability/log.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { readAnnotations } from '../../src/sources/kubernetes/annotations.js';
import { loadAssignment } from '../../src/translate/endpoint.js';
import { createSnapshotCache, DEFAULT_GROUP, zoneGroup } from '../../src/xds/cache.js';
import { createPublisher } from '../../src/xds/publisher.js';
import { TypeUrl } from '../../src/xds/resources.js';
import { ep, model, svc } from '../support/builders.js';

const zoned = (o: { affinity?: boolean; drainA?: boolean } = {}) => model([
  svc('llama', [
    ep('10.0.0.1', 8000, { zone: 'zone-a', ...(o.drainA && { terminating: true, serving: true }) }),
    ep('10.0.0.2', 8000, { zone: 'zone-a', ...(o.drainA && { terminating: true, serving: true }) }),
    ep('10.0.0.3', 8000, { zone: 'zone-b' }),
  ], { settings: { zoneAffinity: o.affinity ?? true } }),
  svc('other', [ep('10.0.1.1', 8000, { zone: 'zone-a' }), ep('10.0.1.2', 8000, { zone: 'zone-b' })]),
]);

const priorities = (value: unknown) => Object.fromEntries((value as any).endpoints.map((l: any) => [l.locality.zone, l.priority ?? 0]));

describe('zone affinity: per-zone views of the endpoints', () => {
  it('puts the local zone at priority 0 and the rest at 1 while the local zone has a ready endpoint; one priority otherwise', () => {
    const s = zoned().services[0]!;
    expect(priorities(loadAssignment(s, 'http').value)).to.deep.equal({ 'zone-a': 0, 'zone-b': 0 });
    expect(priorities(loadAssignment(s, 'http', 'zone-a').value)).to.deep.equal({ 'zone-a': 0, 'zone-b': 1 });
    expect(priorities(loadAssignment(s, 'http', 'zone-b').value)).to.deep.equal({ 'zone-a': 1, 'zone-b': 0 });
    expect(priorities(loadAssignment(s, 'http', 'zone-c').value), 'no endpoint in the zone: one priority').to.deep.equal({ 'zone-a': 0, 'zone-b': 0 });
    const drained = zoned({ drainA: true }).services[0]!;
    expect(priorities(loadAssignment(drained, 'http', 'zone-a').value), 'only draining locally: one priority').to.deep.equal({ 'zone-a': 0, 'zone-b': 0 });
  });

  it('publishes a view per zone with a ready endpoint of an affine service (only those assignments differ), and drops it when the zone empties', async () => {
    const cache = createSnapshotCache();
    const publisher = createPublisher({ cache, log: createMemoryLogger(), metrics: createMetrics() });
    const publish = async (m: Model) => {
      const r = await publisher.publish(m);
      if (!r.ok) throw new Error(r.error.join('; '));
    };
    await publish(zoned());
    expect(cache.groups()).to.deep.equal([DEFAULT_GROUP, 'zone/zone-a', 'zone/zone-b']);
    const base = cache.get(DEFAULT_GROUP)!;
    const a = cache.get(zoneGroup('zone-a'))!;
    expect(a.version).to.not.equal(base.version);
    for (const t of [TypeUrl.Cluster, TypeUrl.Listener, TypeUrl.Route]) expect(a.types[t], t).to.equal(base.types[t]);
    expect(a.types[TypeUrl.Endpoint].resources.get('other/http'), 'no affinity: shared').to.equal(base.types[TypeUrl.Endpoint].resources.get('other/http'));
    expect(a.types[TypeUrl.Endpoint].resources.get('llama/http')!.source).to.contain('"priority":1');
    expect(cache.get(zoneGroup('zone-c')), 'a zone with no view of its own gets the default').to.equal(base);

    // The same model again: the same views, versions unchanged (deterministic per zone).
    const versions = cache.groups().map((g) => cache.get(g)!.version);
    const other = createSnapshotCache();
    const replica = createPublisher({ cache: other, log: createMemoryLogger(), metrics: createMetrics() });
    await replica.publish(zoned());
    expect(other.groups().map((g) => other.get(g)!.version), 'another replica agrees').to.deep.equal(versions);

    // zone-a drains: its view goes, and its clients fall back to the default snapshot with one notification.
    const seen: string[] = [];
    cache.watch(zoneGroup('zone-a'), (s) => seen.push(s.version));
    await publish(zoned({ drainA: true }));
    expect(cache.groups()).to.deep.equal([DEFAULT_GROUP, 'zone/zone-b']);
    expect(cache.get(zoneGroup('zone-a'))).to.equal(cache.get(DEFAULT_GROUP));
    expect(seen.at(-1)).to.equal(cache.get(DEFAULT_GROUP)!.version);
    // Affinity turned off: no views at all.
    await publish(zoned({ affinity: false }));
    expect(cache.groups()).to.deep.equal([DEFAULT_GROUP]);
  });

  it('after an endpoint-only change, patches each zone view with the changed services alone, to what a full build gives', async () => {
    const cache = createSnapshotCache();
    const metrics = createMetrics();
    const publisher = createPublisher({ cache, log: createMemoryLogger(), metrics });
    const before = zoned();
    await publisher.publish(before);
    const more = model([
      svc('llama', [ep('10.0.0.1', 8000, { zone: 'zone-a' }), ep('10.0.0.2', 8000, { zone: 'zone-a', ready: false }), ep('10.0.0.3', 8000, { zone: 'zone-b' }), ep('10.0.0.4', 8000, { zone: 'zone-b' })]),
      svc('other', [ep('10.0.1.1', 8000, { zone: 'zone-a' }), ep('10.0.1.3', 8000, { zone: 'zone-b' })]),
    ]);
    // The same services, settings and ports (by identity), new endpoints: what a Kubernetes event gives.
    const after: Model = { ...before, services: before.services.map((s, i) => ({ ...s, endpoints: more.services[i]!.endpoints })) };
    const a = cache.get(zoneGroup('zone-a'))!;
    const r = await publisher.publish(after, new Set(['llama', 'other']));
    expect(r.ok).to.equal(true);
    expect(await metrics.value('inferplane_snapshots_total', { result: 'fast-path' })).to.equal(1);
    const full = createSnapshotCache();
    await createPublisher({ cache: full, log: createMemoryLogger(), metrics: createMetrics() }).publish(after);
    expect(cache.groups()).to.deep.equal(full.groups());
    for (const g of full.groups()) {
      const [mine, theirs] = [cache.get(g)!, full.get(g)!];
      expect(mine.version, g).to.equal(theirs.version);
      expect([...mine.types[TypeUrl.Endpoint].resources.values()].map((x) => x.source), g).to.deep.equal([...theirs.types[TypeUrl.Endpoint].resources.values()].map((x) => x.source));
    }
    expect(cache.get(zoneGroup('zone-a'))!.types[TypeUrl.Endpoint].resources.get('llama/http')!.source).to.not.equal(a.types[TypeUrl.Endpoint].resources.get('llama/http')!.source);
  });

  it('tells a zone group\'s watchers of every default snapshot while it has none of its own, and not after', async () => {
    const cache = createSnapshotCache();
    const publisher = createPublisher({ cache, log: createMemoryLogger(), metrics: createMetrics() });
    const seen: string[] = [];
    cache.watch(zoneGroup('zone-c'), (s) => seen.push(s.version));
    await publisher.publish(zoned());
    await publisher.publish(zoned({ drainA: true }));
    expect(seen).to.have.length(2);
    const groupOf = (zone?: string) => cache.groupOf({ id: 'n', cluster: '', userAgent: 'envoy', ...(zone && { zone }) });
    expect([groupOf(), groupOf('zone-b')]).to.deep.equal([DEFAULT_GROUP, 'zone/zone-b']);
  });

  it('reads zoneAffinity in the file and inferplane.io/zone-affinity on a Service, refusing anything but a boolean', () => {
    const bad = readModel({ services: [svc('llama', [], { settings: { zoneAffinity: 'yes' } })] });
    expect(!bad.ok && bad.error.map((p) => `${formatPath(p.path)}: ${p.message}`)).to.deep.equal(['services[0].settings.zoneAffinity: expected true or false']);
    const on = readAnnotations({ 'inferplane.io/zone-affinity': 'true' }, 'ml/llama', ['http']);
    expect('settings' in on && on.settings.zoneAffinity).to.equal(true);
    expect(readAnnotations({ 'inferplane.io/zone-affinity': 'yes' }, 'ml/llama', ['http'])).to.deep.equal({ problems: [{ annotation: 'inferplane.io/zone-affinity', message: '"yes" is not true or false' }] });
  });

  it('reads loadAwareWeights in the file and inferplane.io/load-aware-weights on a Service, off by default, refusing anything but a boolean', () => {
    const bad = readModel({ services: [svc('llama', [], { settings: { loadAwareWeights: 1 } })] });
    expect(!bad.ok && bad.error.map((p) => `${formatPath(p.path)}: ${p.message}`)).to.deep.equal(['services[0].settings.loadAwareWeights: expected true or false']);
    const off = readModel({ services: [svc('llama', [])] });
    expect(off.ok && off.value.services[0]!.settings.loadAwareWeights).to.equal(false);
    const on = readAnnotations({ 'inferplane.io/load-aware-weights': 'true' }, 'ml/llama', ['http']);
    expect('settings' in on && on.settings.loadAwareWeights).to.equal(true);
    expect(readAnnotations({ 'inferplane.io/load-aware-weights': 'on' }, 'ml/llama', ['http'])).to.deep.equal({ problems: [{ annotation: 'inferplane.io/load-aware-weights', message: '"on" is not true or false' }] });
  });
});
