import { expect } from 'chai';
import type { ResourceSpec } from '../../src/translate/common.js';
import { translate } from '../../src/translate/translate.js';
import { buildSnapshot } from '../../src/xds/snapshot.js';
import { TypeUrl } from '../../src/xds/resources.js';
import { ep, model, svc } from '../support/builders.js';

function snapshotOf(specs: ResourceSpec[]) {
  const s = buildSnapshot(specs);
  if (!s.ok) throw new Error(s.error.join('\n'));
  return s.value;
}

describe('buildSnapshot', () => {
  const m = model([svc('a', [ep('10.0.0.1', 80)]), svc('b', [ep('10.0.0.2', 80)])]);

  it('gives identical versions for identical input, whatever the input order', () => {
    const one = snapshotOf(translate(m));
    const two = snapshotOf(translate(model([svc('b', [ep('10.0.0.2', 80)]), svc('a', [ep('10.0.0.1', 80)])])));
    const three = snapshotOf([...translate(m)].reverse());
    expect(two.version).to.equal(one.version);
    expect(three.version).to.equal(one.version);
    for (const t of Object.values(TypeUrl)) expect(two.types[t].version).to.equal(one.types[t].version);
  });

  it('changes only the versions of what changed', () => {
    const before = snapshotOf(translate(m));
    const after = snapshotOf(translate(model([svc('a', [ep('10.0.0.1', 80), ep('10.0.0.9', 80)]), svc('b', [ep('10.0.0.2', 80)])])));
    expect(after.types[TypeUrl.Endpoint].version).to.not.equal(before.types[TypeUrl.Endpoint].version);
    expect(after.types[TypeUrl.Endpoint].resources.get('b/http')!.version).to.equal(before.types[TypeUrl.Endpoint].resources.get('b/http')!.version);
    for (const t of [TypeUrl.Cluster, TypeUrl.Listener, TypeUrl.Route]) expect(after.types[t].version).to.equal(before.types[t].version);
  });

  it('reuses the encoding of unchanged resources from the previous snapshot', () => {
    const before = snapshotOf(translate(m));
    const after = buildSnapshot(translate(model([svc('a', [ep('10.0.0.1', 80), ep('10.0.0.9', 80)]), svc('b', [ep('10.0.0.2', 80)])])), before);
    if (!after.ok) throw new Error('rejected');
    expect(after.value.types[TypeUrl.Endpoint].resources.get('b/http')).to.equal(before.types[TypeUrl.Endpoint].resources.get('b/http'));
    expect(after.value.types[TypeUrl.Endpoint].resources.get('a/http')).to.not.equal(before.types[TypeUrl.Endpoint].resources.get('a/http'));
  });

  it('shares one wildcard body across streams and leaves named-only listeners out of it', () => {
    const s = snapshotOf(translate(m));
    expect(s.types[TypeUrl.Listener].wildcardBody).to.have.length(1);
    expect(s.types[TypeUrl.Cluster].wildcardBody).to.have.length(2);
  });

  const broken: [string, (specs: ResourceSpec[]) => ResourceSpec[], string][] = [
    ['a cluster whose assignment is missing', (s) => s.filter((r) => !(r.typeUrl === TypeUrl.Endpoint && r.name === 'a/http')), 'Cluster "a/http" refers to missing ClusterLoadAssignment "a/http"'],
    ['an assignment no cluster references', (s) => s.filter((r) => !(r.typeUrl === TypeUrl.Cluster && r.name === 'b/http') && !(r.typeUrl === TypeUrl.Route)), 'ClusterLoadAssignment "b/http" is not referenced by any Cluster'],
    ['a listener whose route table is missing', (s) => s.filter((r) => !(r.typeUrl === TypeUrl.Route && r.name === 'ingress')), 'Listener "ingress" refers to missing RouteConfiguration "ingress"'],
    ['a route table no listener references', (s) => s.filter((r) => !(r.typeUrl === TypeUrl.Listener && r.name === 'a')), 'RouteConfiguration "a" is not referenced by any Listener'],
    ['a route to a missing cluster', (s) => s.filter((r) => !(r.typeUrl === TypeUrl.Cluster && r.name === 'a/http') && !(r.typeUrl === TypeUrl.Endpoint && r.name === 'a/http')), 'RouteConfiguration "ingress" refers to missing Cluster "a/http"'],
    ['a duplicate name', (s) => [...s, s[0]!], 'duplicate resource name "a/http"'],
    ['an unencodable resource', (s) => s.map((r) => (r.typeUrl === TypeUrl.Cluster && r.name === 'a/http' ? { ...r, value: { ...r.value, lb_polcy: 1 } } : r)), 'a/http: envoy.config.cluster.v3.Cluster.lb_polcy: no such field'],
  ];
  for (const [what, mutate, message] of broken) {
    it(`rejects ${what}`, () => {
      const r = buildSnapshot(mutate(translate(m)));
      expect(r.ok).to.equal(false);
      if (!r.ok) expect(r.error.some((e) => e.includes(message)), JSON.stringify(r.error)).to.equal(true);
    });
  }
});
