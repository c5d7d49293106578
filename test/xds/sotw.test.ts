import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { TypeUrl } from '../../src/xds/resources.js';
import { syncState } from '../../src/xds/stream.js';
import { ep, model, svc } from '../support/builders.js';
import { eventually, startHarness, type Harness } from '../support/harness.js';
import { sentBeforeProbe } from '../support/probe.js';
import type { RecordingXdsClient, SeenResponse } from '../support/xds-client.js';

const NODE = { id: 'envoy-1', cluster: 'edge' };
const base = () => model([svc('a', [ep('10.0.0.1', 80)]), svc('b', [ep('10.0.0.2', 80)])]);
const names = (r: SeenResponse) => r.resources.map((x) => x.name);
const ack = (c: RecordingXdsClient, r: SeenResponse, resourceNames: string[] = []) =>
  c.send({ type_url: r.typeUrl, version_info: r.versionInfo, response_nonce: r.nonce, resource_names: resourceNames });

describe('SotW ADS (recording client on the real gRPC server)', () => {
  let h: Harness;
  beforeEach(async () => (h = await startHarness(base())));
  afterEach(() => h.stop());

  it('answers a first empty CDS request as a wildcard with every cluster and the snapshot version', async () => {
    const c = h.client('sotw');
    c.send({ node: NODE, type_url: TypeUrl.Cluster });
    const r = await c.next();
    expect(names(r)).to.deep.equal(['a/http', 'b/http']);
    expect(r.versionInfo).to.equal(h.cache.get('default')!.types[TypeUrl.Cluster].version);
    expect(r.controlPlane).to.equal('inferplane');
  });

  it('sends nothing after an ACK, and pushes only real changes', async () => {
    const c = h.client('sotw');
    c.send({ node: NODE, type_url: TypeUrl.Cluster });
    const first = await c.next();
    ack(c, first);
    await h.publish(base()); // identical content: same versions, nothing to send
    expect(await sentBeforeProbe(c, 1)).to.deep.equal([]);
    await h.publish(model([svc('a', [ep('10.0.0.1', 80)]), svc('b', [ep('10.0.0.2', 80)]), svc('c', [])]));
    const pushed = await c.next((r) => r.typeUrl === TypeUrl.Cluster, 1);
    expect(names(pushed)).to.deep.equal(['a/http', 'b/http', 'c/http']);
    expect(pushed.nonce).to.not.equal(first.nonce);
  });

  it('records a NACK (node status, metric) and does not resend the rejected config', async () => {
    const c = h.client('sotw');
    c.send({ node: NODE, type_url: TypeUrl.Cluster });
    const r = await c.next();
    c.send({ type_url: TypeUrl.Cluster, version_info: '', response_nonce: r.nonce, error_detail: { code: 3, message: 'cluster a/http: bad thing' } });
    expect(await sentBeforeProbe(c, 1)).to.deep.equal([]);
    const [node] = h.server.nodes();
    expect(node!.types['cds']!.lastNack).to.include({ version: r.versionInfo, nonce: r.nonce, code: 3, message: 'cluster a/http: bad thing' });
    expect(node!.types['cds']!.ackedVersion).to.equal(undefined);
    expect(await h.metrics.value('inferplane_xds_nacks_total', { type: 'cds' })).to.equal(1);
    // New config still goes out.
    const from = c.responses.length;
    await h.publish(model([svc('a', [ep('10.0.0.1', 80)]), svc('b', [ep('10.0.0.2', 80)]), svc('c', [])]));
    expect(names(await c.next((x) => x.typeUrl === TypeUrl.Cluster, from))).to.deep.equal(['a/http', 'b/http', 'c/http']);
  });

  it('keeps and logs at most 1,024 characters of a NACK message', async () => {
    const c = h.client('sotw');
    c.send({ node: NODE, type_url: TypeUrl.Cluster });
    const r = await c.next();
    c.send({ type_url: TypeUrl.Cluster, response_nonce: r.nonce, error_detail: { code: 3, message: 'e'.repeat(900_000) } });
    expect(await sentBeforeProbe(c, 1)).to.deep.equal([]);
    expect(h.server.nodes()[0]!.types['cds']!.lastNack!.message).to.equal(`${'e'.repeat(1024)}… (898976 more characters)`);
    expect(JSON.stringify(h.log.lines.find((l) => l.msg === 'NACK')).length).to.be.below(2048);
  });

  it('ignores a request whose nonce is not the latest sent for its type', async () => {
    const c = h.client('sotw');
    c.send({ node: NODE, type_url: TypeUrl.Endpoint, resource_names: ['a/http'] });
    const r1 = await c.next();
    await h.publish(model([svc('a', [ep('10.0.0.1', 80), ep('10.0.0.3', 80)]), svc('b', [ep('10.0.0.2', 80)])]));
    const r2 = await c.next((r) => r.nonce !== r1.nonce);
    // A late ACK of r1 that also asks for b/http: stale, so ignored (no answer with b/http).
    c.send({ type_url: TypeUrl.Endpoint, version_info: r1.versionInfo, response_nonce: r1.nonce, resource_names: ['a/http', 'b/http'] });
    expect(await sentBeforeProbe(c, 2)).to.deep.equal([]);
    // The same request with the latest nonce is answered.
    c.send({ type_url: TypeUrl.Endpoint, version_info: r2.versionInfo, response_nonce: r2.nonce, resource_names: ['a/http', 'b/http'] });
    expect(names(await c.next((r) => r.typeUrl === TypeUrl.Endpoint, 3))).to.include('b/http');
  });

  it('sends nothing to a client that reconnects holding the current version (no churn), and catches up an old one', async () => {
    const c1 = h.client('sotw');
    c1.send({ node: NODE, type_url: TypeUrl.Cluster });
    const r = await c1.next();
    c1.close();
    const c2 = h.client('sotw');
    c2.send({ node: NODE, type_url: TypeUrl.Cluster, version_info: r.versionInfo });
    expect(await sentBeforeProbe(c2, 0)).to.deep.equal([]);
    const c3 = h.client('sotw');
    c3.send({ node: NODE, type_url: TypeUrl.Cluster, version_info: 'some-older-version' });
    expect(names(await c3.next())).to.deep.equal(['a/http', 'b/http']);
  });

  it('remembers a name requested before it exists and sends it when it appears', async () => {
    const c = h.client('sotw');
    c.send({ node: NODE, type_url: TypeUrl.Endpoint, resource_names: ['later/http'] });
    const empty = await c.next();
    expect(empty.resources).to.deep.equal([]);
    ack(c, empty, ['later/http']);
    await h.publish(model([svc('a', [ep('10.0.0.1', 80)]), svc('b', [ep('10.0.0.2', 80)]), svc('later', [ep('10.0.0.7', 80)])]));
    const r = await c.next((x) => x.resources.length > 0);
    expect(names(r)).to.deep.equal(['later/http']);
    expect(r.resources[0]!.value['endpoints'][0].lb_endpoints[0].endpoint.address.socket_address.address).to.equal('10.0.0.7');
  });

  it('sends EDS again after a cluster changes, even when the assignment did not', async () => {
    const c = h.client('sotw');
    c.send({ node: NODE, type_url: TypeUrl.Cluster });
    const cds = await c.next();
    ack(c, cds);
    c.send({ type_url: TypeUrl.Endpoint, resource_names: ['a/http', 'b/http'] });
    const eds = await c.next((r) => r.typeUrl === TypeUrl.Endpoint);
    ack(c, eds, ['a/http', 'b/http']);
    const from = c.responses.length;
    await h.publish(model([svc('a', [ep('10.0.0.1', 80)], { settings: { connectTimeout: '5s' } }), svc('b', [ep('10.0.0.2', 80)])]));
    const cds2 = await c.next((r) => r.typeUrl === TypeUrl.Cluster, from);
    const eds2 = await c.next((r) => r.typeUrl === TypeUrl.Endpoint, from);
    expect(c.responses.indexOf(eds2)).to.be.greaterThan(c.responses.indexOf(cds2));
    expect(names(eds2)).to.deep.equal(['a/http']);
    expect(eds2.resources[0]!.value).to.deep.equal(eds.resources.find((r) => r.name === 'a/http')!.value);
  });

  it('orders an update make-before-break: CDS, EDS, LDS, RDS', async () => {
    const c = h.client('sotw');
    c.send({ node: NODE, type_url: TypeUrl.Cluster });
    c.send({ type_url: TypeUrl.Endpoint, resource_names: ['a/http', 'b/http', 'c/http'] });
    c.send({ type_url: TypeUrl.Listener });
    c.send({ type_url: TypeUrl.Route, resource_names: ['ingress'] });
    await c.next((r) => r.typeUrl === TypeUrl.Route);
    for (const t of [TypeUrl.Cluster, TypeUrl.Endpoint, TypeUrl.Listener, TypeUrl.Route]) {
      const last = c.responses.filter((r) => r.typeUrl === t).pop()!;
      ack(c, last, t === TypeUrl.Endpoint ? ['a/http', 'b/http', 'c/http'] : t === TypeUrl.Route ? ['ingress'] : []);
    }
    const from = c.responses.length;
    await h.publish(model([svc('a', [ep('10.0.0.1', 80)]), svc('b', [ep('10.0.0.2', 80)]), svc('c', [ep('10.0.0.3', 80)])], { port: 10001 }));
    await c.next((r) => r.typeUrl === TypeUrl.Route, from);
    expect(c.responses.slice(from).map((r) => r.typeUrl)).to.deep.equal([TypeUrl.Cluster, TypeUrl.Endpoint, TypeUrl.Listener, TypeUrl.Route]);
  });

  it('removes a cluster only after the routes that used it are replaced and ACKed', async () => {
    const c = h.client('sotw');
    c.send({ node: NODE, type_url: TypeUrl.Cluster });
    c.send({ type_url: TypeUrl.Listener });
    c.send({ type_url: TypeUrl.Route, resource_names: ['ingress'] });
    await c.next((r) => r.typeUrl === TypeUrl.Route);
    for (const t of [TypeUrl.Cluster, TypeUrl.Listener, TypeUrl.Route]) ack(c, c.responses.filter((r) => r.typeUrl === t).pop()!, t === TypeUrl.Route ? ['ingress'] : []);
    const from = c.responses.length;
    await h.publish(model([svc('a', [ep('10.0.0.1', 80)])]));
    const rds = await c.next((r) => r.typeUrl === TypeUrl.Route, from);
    const routesTo = (r: SeenResponse) => r.resources[0]!.value['virtual_hosts'][0].routes.map((x: any) => x.route.cluster);
    expect(routesTo(rds)).to.deep.equal(['a/http']);
    // Until the new routes are ACKed, b/http stays.
    expect(c.responses.slice(from).filter((r) => r.typeUrl === TypeUrl.Cluster && !names(r).includes('b/http'))).to.deep.equal([]);
    ack(c, rds, ['ingress']);
    const cds = await c.next((r) => r.typeUrl === TypeUrl.Cluster && !names(r).includes('b/http'), from);
    expect(names(cds)).to.deep.equal(['a/http']);
    expect(cds.versionInfo).to.equal(h.cache.get('default')!.types[TypeUrl.Cluster].version);
  });

  it('serves named-only API listeners to clients that name them, never to wildcard subscribers', async () => {
    const c = h.client('sotw');
    c.send({ node: NODE, type_url: TypeUrl.Listener });
    expect(names(await c.next())).to.deep.equal(['ingress']);
    const g = h.client('sotw');
    g.send({ node: { id: 'grpc-client' }, type_url: TypeUrl.Listener, resource_names: ['a'] });
    const r = await g.next();
    expect(names(r)).to.deep.equal(['a']);
    expect(r.resources[0]!.value['api_listener']).to.have.property('api_listener');
  });

  it('versions each stream by what it receives: a new API listener moves no wildcard client, and its reconnect is sent nothing', async () => {
    const c = h.client('sotw');
    c.send({ node: NODE, type_url: TypeUrl.Listener });
    const r = await c.next();
    ack(c, r);
    const e = h.client('sotw');
    e.send({ node: NODE, type_url: TypeUrl.Endpoint, resource_names: ['a/http'] });
    const er = await e.next();
    ack(e, er, ['a/http']);
    // A third service: a new API listener and cluster, and a changed assignment of b; none of them reach c or e.
    await h.publish(model([svc('a', [ep('10.0.0.1', 80)]), svc('b', [ep('10.0.0.2', 80), ep('10.0.0.3', 80)]), svc('c', [ep('10.0.0.4', 80)])]));
    expect(await sentBeforeProbe(c, 1, TypeUrl.Cluster)).to.deep.equal([]);
    expect(await sentBeforeProbe(e, 1, TypeUrl.Cluster)).to.deep.equal([]);
    const lds = h.cache.get('default')!.types[TypeUrl.Listener];
    expect(r.versionInfo).to.equal(lds.wildcardVersion).and.not.equal(lds.version);
    const again = h.client('sotw');
    again.send({ node: NODE, type_url: TypeUrl.Listener, version_info: r.versionInfo });
    again.send({ node: NODE, type_url: TypeUrl.Endpoint, version_info: er.versionInfo, resource_names: ['a/http'] });
    expect(await sentBeforeProbe(again, 0, TypeUrl.Cluster)).to.deep.equal([]);
    // Versions follow content alone: a second server given the same model agrees.
    const other = await startHarness(model([svc('a', [ep('10.0.0.1', 80)]), svc('b', [ep('10.0.0.2', 80), ep('10.0.0.3', 80)]), svc('c', [ep('10.0.0.4', 80)])]));
    try {
      const o = other.client('sotw');
      o.send({ node: NODE, type_url: TypeUrl.Endpoint, resource_names: ['a/http'] });
      expect((await o.next()).versionInfo).to.equal(er.versionInfo);
    } finally {
      await other.stop();
    }
  });

  it('logs and ignores duplicate names in one request', async () => {
    const c = h.client('sotw');
    c.send({ node: NODE, type_url: TypeUrl.Endpoint, resource_names: ['a/http', 'a/http'] });
    expect(names(await c.next())).to.deep.equal(['a/http']);
    expect(h.log.lines.some((l) => l.level === 'warn' && l.msg.includes('more than once'))).to.equal(true);
  });

  it('keeps each stream\'s subscription its own when several sent the same names (they share one decoding)', async () => {
    const [a, b, c] = [1, 2, 3].map(() => h.client('sotw'));
    const same = ['b/http', 'a/http', 'b/http'];
    a!.send({ node: { id: 'envoy-a', cluster: 'edge' }, type_url: TypeUrl.Endpoint, resource_names: same });
    b!.send({ node: { id: 'envoy-b', cluster: 'edge' }, type_url: TypeUrl.Endpoint, resource_names: same });
    const [ra, rb] = [await a!.next(), await b!.next()];
    expect(names(ra)).to.deep.equal(['a/http', 'b/http']);
    expect(names(rb)).to.deep.equal(['a/http', 'b/http']);
    expect(rb.versionInfo).to.equal(ra.versionInfo);
    // Each stream's repeated name is reported, the second's too.
    expect(h.log.lines.filter((l) => l.msg.includes('more than once')).map((l) => l.fields['node']).sort()).to.deep.equal(['envoy-a', 'envoy-b']);
    // b narrows its subscription; a's stays whole, and a third stream with a's names gets both.
    ack(b!, rb, ['a/http']);
    ack(a!, ra, same);
    await eventually(() => h.server.nodes().find((n) => n.nodeId === 'envoy-b')!.types['eds']!.subscribed.join() === 'a/http', 'b narrowed to a/http');
    c!.send({ node: { id: 'envoy-c', cluster: 'edge' }, type_url: TypeUrl.Endpoint, resource_names: same });
    expect(names(await c!.next())).to.deep.equal(['a/http', 'b/http']);
    expect(h.server.nodes().find((n) => n.nodeId === 'envoy-a')!.types['eds']!.subscribed).to.deep.equal(['a/http', 'b/http']);
    await h.publish(model([svc('a', [ep('10.0.0.1', 80)]), svc('b', [ep('10.0.0.2', 80), ep('10.0.0.3', 80)])]));
    expect(names(await a!.next((r) => r.nonce !== ra.nonce))).to.deep.equal(['b/http']);
    expect(await sentBeforeProbe(b!, 1)).to.deep.equal([]);
  });
});

describe('SotW per-type services', () => {
  let h: Harness;
  beforeEach(async () => (h = await startHarness(base())));
  afterEach(() => h.stop());

  for (const [service, type, req, expected] of [
    ['cds', TypeUrl.Cluster, {}, ['a/http', 'b/http']],
    ['eds', TypeUrl.Endpoint, { resource_names: ['b/http'] }, ['b/http']],
    ['lds', TypeUrl.Listener, {}, ['ingress']],
    ['rds', TypeUrl.Route, { resource_names: ['ingress'] }, ['ingress']],
  ] as const) {
    it(`serves ${service.toUpperCase()} on its own service, with type_url left empty`, async () => {
      const c = h.client('sotw', service);
      c.send({ node: NODE, ...req });
      const r = await c.next();
      expect(r.typeUrl).to.equal(type);
      expect(names(r)).to.deep.equal(expected);
    });
  }
});

describe('SotW bad input', () => {
  let h: Harness;
  beforeEach(async () => (h = await startHarness(base(), { limits: { maxNamesPerRequest: 5 }, maxMessageBytes: 4096 })));
  afterEach(() => h.stop());

  const cases: [string, 'ads' | 'cds', Record<string, unknown>[], status, string][] = [
    ['a first request with no node', 'ads', [{ type_url: TypeUrl.Cluster }], status.INVALID_ARGUMENT, 'the first request on a stream must carry node'],
    ['an unknown type URL', 'ads', [{ node: NODE, type_url: 'type.googleapis.com/envoy.config.core.v3.Secret' }], status.INVALID_ARGUMENT, 'unknown or unserved type_url "type.googleapis.com/envoy.config.core.v3.Secret"'],
    ['an ADS request without a type URL', 'ads', [{ node: NODE }], status.INVALID_ARGUMENT, 'an ADS request must carry type_url'],
    ['another type on a per-type service', 'cds', [{ node: NODE, type_url: TypeUrl.Listener }], status.INVALID_ARGUMENT, 'does not belong on the CDS service'],
    ['too many names', 'ads', [{ node: NODE, type_url: TypeUrl.Endpoint, resource_names: ['1', '2', '3', '4', '5', '6'] }], status.INVALID_ARGUMENT, 'names 6 resources; the limit is 5'],
    ['an oversized message', 'ads', [{ node: { id: 'x'.repeat(10_000) }, type_url: TypeUrl.Cluster }], status.RESOURCE_EXHAUSTED, 'larger than'],
    ['a node id over 1,024 characters', 'ads', [{ node: { id: 'n'.repeat(1100) }, type_url: TypeUrl.Cluster }], status.INVALID_ARGUMENT, 'node.id is 1100 characters; the limit is 1024'],
    // Echoed whole, a long type URL would overflow the HTTP/2 trailer and leave the client with no status.
    ['a 3,000-character unknown type URL', 'ads', [{ node: NODE, type_url: `type.googleapis.com/${'x'.repeat(2980)}` }], status.INVALID_ARGUMENT, '… (2800 more characters)'],
  ];
  for (const [what, service, reqs, code, details] of cases) {
    it(`closes the stream on ${what} with a clear status, and keeps serving others`, async () => {
      const c = h.client('sotw', service);
      for (const r of reqs) c.send(r);
      const s = await c.status;
      expect(status[s.code]).to.equal(status[code]);
      expect(s.details).to.contain(details);
      const ok = h.client('sotw');
      ok.send({ node: NODE, type_url: TypeUrl.Cluster });
      expect((await ok.next()).resources).to.have.length(2);
    });
  }

  it('forgets a closed stream in the node status', async () => {
    const c = h.client('sotw');
    c.send({ node: NODE, type_url: TypeUrl.Cluster });
    await c.next();
    expect(h.server.nodes()).to.have.length(1);
    c.close();
    await eventually(() => h.server.nodes().length === 0, 'stream removed from status');
  });

  it('lists each node offering a stats URL once, however many streams it holds, until they close; counts sync states as the status does', async () => {
    const offering = { id: 'envoy-pull', cluster: 'edge', metadata: { fields: { 'inferplane.io/stats-url': { stringValue: 'http://10.0.0.9:9901' } } } };
    const cds = h.client('sotw', 'cds');
    const eds = h.client('delta', 'eds');
    const silent = h.client('sotw');
    cds.send({ node: offering, type_url: TypeUrl.Cluster });
    eds.send({ node: offering, type_url: TypeUrl.Endpoint, resource_names_subscribe: ['a/http'] });
    silent.send({ node: NODE, type_url: TypeUrl.Cluster });
    const first = await cds.next();
    ack(cds, first);
    await eds.next();
    await silent.next();
    await eventually(() => h.server.nodes().every((n) => Object.values(n.types).every((t) => t.sentVersion !== undefined)) && h.server.nodes().length === 3, 'all three answered');
    expect(h.server.statsTargets()).to.deep.equal([{ nodeId: 'envoy-pull', url: 'http://10.0.0.9:9901' }]);
    await eventually(() => h.server.nodes().find((n) => n.service === 'cds')!.types['cds']!.ackedVersion === first.versionInfo, 'the ACK recorded');
    const fromStatus = new Map<string, number>();
    for (const n of h.server.nodes()) for (const [type, t] of Object.entries(n.types)) fromStatus.set(`${type} ${syncState(t)}`, (fromStatus.get(`${type} ${syncState(t)}`) ?? 0) + 1);
    expect(new Map(h.server.syncCounts().map((c) => [`${c.type} ${c.state}`, c.streams]))).to.deep.equal(fromStatus);
    expect(fromStatus).to.deep.equal(new Map([['cds synced', 1], ['cds pending', 1], ['eds pending', 1]]));
    cds.close();
    expect(h.server.statsTargets()).to.have.length(1);
    eds.close();
    await eventually(() => h.server.statsTargets().length === 0, 'the node forgotten once its last stream closed');
  });
});
