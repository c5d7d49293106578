import { expect } from 'chai';
import { startAdminServer, type AdminServer } from '../../src/observability/admin.js';
import { TypeUrl } from '../../src/xds/resources.js';
import { ep, model, svc } from '../support/builders.js';
import { eventually, startHarness, type Harness } from '../support/harness.js';

describe('admin server', () => {
  let h: Harness;
  let admin: AdminServer;
  const get = async (p: string) => {
    const r = await fetch(`http://127.0.0.1:${admin.port}${p}`);
    return { status: r.status, text: await r.text() };
  };
  beforeEach(async () => {
    h = await startHarness();
    admin = await startAdminServer('127.0.0.1', 0, { xds: h.server, cache: h.cache, metrics: h.metrics, ready: h.publisher.ready, model: h.publisher.model, fleet: () => ({ services: {}, reporters: [] }) });
  });
  afterEach(async () => {
    await admin.close();
    await h.stop();
  });

  it('is ready only once the first complete snapshot is set', async () => {
    expect((await get('/healthz')).status).to.equal(200);
    expect((await get('/readyz')).status).to.equal(503);
    await h.publish(model([svc('a', [ep('10.0.0.1', 80)])]));
    expect((await get('/readyz')).status).to.equal(200);
  });

  it('shows counters at 0 before their first event, so queries and alerts have a series from the start', async () => {
    const text = (await get('/metrics')).text;
    for (const type of ['cds', 'eds', 'lds', 'rds']) {
      expect(text).to.contain(`inferplane_xds_nacks_total{type="${type}"} 0`);
      for (const variant of ['sotw', 'delta']) expect(text).to.contain(`inferplane_xds_responses_total{type="${type}",variant="${variant}"} 0`);
    }
    expect(text).to.contain('inferplane_xds_streams_opened_total{service="ads",variant="delta"} 0').and.contain('inferplane_snapshots_total{result="rejected"} 0');
    expect(text).to.contain('inferplane_connections_closed_total{reason="handshake-timeout"} 0');
  });

  it('shows each connected node: id, cluster, stream kind, ACKed version, pending nonce, last NACK', async () => {
    await h.publish(model([svc('a', [ep('10.0.0.1', 80)])]));
    const c = h.client('sotw');
    c.send({ node: { id: 'envoy-7', cluster: 'edge', user_agent_name: 'envoy' }, type_url: TypeUrl.Cluster });
    const r = await c.next();
    c.send({ type_url: TypeUrl.Cluster, version_info: r.versionInfo, response_nonce: r.nonce });
    c.send({ type_url: TypeUrl.Listener });
    const l = await c.next((x) => x.typeUrl === TypeUrl.Listener);
    c.send({ type_url: TypeUrl.Listener, response_nonce: l.nonce, error_detail: { code: 3, message: 'no' } });
    let nodes: any[] = [];
    for (const deadline = Date.now() + 5000; Date.now() < deadline;) {
      nodes = JSON.parse((await get('/status/nodes')).text).nodes;
      if (nodes[0]?.types?.lds?.lastNack) break;
    }
    expect(nodes).to.have.length(1);
    const n = nodes[0];
    expect(n).to.include({ nodeId: 'envoy-7', cluster: 'edge', userAgent: 'envoy', service: 'ads', variant: 'sotw', group: 'default' });
    expect(n.types.cds).to.deep.equal({ subscribed: ['*'], subscribedCount: 1, sentVersion: r.versionInfo, ackedVersion: r.versionInfo });
    expect(n.types.lds.lastNack).to.include({ message: 'no', code: 3 });
    expect(Date.parse(n.connectedSince)).to.be.a('number').and.not.NaN;
    const metrics = (await get('/metrics')).text;
    expect(metrics).to.contain('inferplane_xds_nacks_total{type="lds"} 1');
    expect(metrics).to.contain('inferplane_xds_streams 1');
    const snaps = JSON.parse((await get('/status/snapshots')).text);
    expect(snaps.groups.default.types.cds.resources).to.deep.equal([{ name: 'a/http', version: h.cache.get('default')!.types[TypeUrl.Cluster].resources.get('a/http')!.version }]);
  });

  it('lists at most 100 resources per type in /status/snapshots, and every one of a type with ?type=', async () => {
    await h.publish(model(Array.from({ length: 150 }, (_, i) => svc(`s${String(i).padStart(3, '0')}`, [ep('10.0.0.1', 80)]))));
    const sample = JSON.parse((await get('/status/snapshots')).text).groups.default.types;
    expect(sample.cds.resourceCount).to.equal(150);
    expect(sample.cds.resources).to.have.length(100);
    expect(sample.lds.resourceCount).to.equal(151); // the Envoy listener and one API listener per service
    const eds = JSON.parse((await get('/status/snapshots?type=eds')).text).groups.default.types;
    expect(Object.keys(eds)).to.deep.equal(['eds']);
    expect(eds.eds.resources.map((r: any) => r.name)).to.have.length(150).and.include('s149/http');
    const bad = await get('/status/snapshots?type=clusters');
    expect(bad.status).to.equal(400);
    expect(JSON.parse(bad.text).error).to.equal('type=clusters: not one of cds, eds, lds, rds');
  });

  it('lists at most 100 subscribed names per stream and type, and every name for one node with ?node=', async () => {
    await h.publish(model([svc('a', [ep('10.0.0.1', 80)])]));
    const names = Array.from({ length: 5_000 }, (_, i) => `n${i}`);
    const big = h.client('delta');
    big.send({ node: { id: 'many-names', cluster: 'edge' }, type_url: TypeUrl.Endpoint, resource_names_subscribe: names });
    const small = h.client('sotw');
    small.send({ node: { id: 'few-names', cluster: 'edge' }, type_url: TypeUrl.Endpoint, resource_names: ['a/http'] });
    await eventually(() => h.server.nodes().length === 2 && h.server.nodes().every((n) => n.types['eds']?.sentVersion !== undefined), 'both streams answered');
    const all = JSON.parse((await get('/status/nodes')).text).nodes;
    const eds = (id: string, list: any[]) => list.find((n: any) => n.nodeId === id).types.eds;
    expect(eds('many-names', all).subscribedCount).to.equal(5_000);
    expect(eds('many-names', all).subscribed).to.have.length(100);
    expect(eds('few-names', all)).to.include({ subscribedCount: 1 });
    expect(eds('few-names', all).subscribed).to.deep.equal(['a/http']);
    const one = JSON.parse((await get('/status/nodes?node=many-names')).text).nodes;
    expect(one.map((n: any) => n.nodeId)).to.deep.equal(['many-names']);
    expect(eds('many-names', one).subscribed).to.have.members(names);
  });

  it('answers unknown paths and methods with a clear error', async () => {
    const r = await get('/nope');
    expect(r.status).to.equal(404);
    expect(JSON.parse(r.text).error).to.equal('no such path /nope');
    const post = await fetch(`http://127.0.0.1:${admin.port}/readyz`, { method: 'POST' });
    expect(post.status).to.equal(405);
  });

  it('pages /status/nodes and /status/services on request, and refuses bad paging with a message that names the parameter', async () => {
    await h.publish(model([svc('a', [ep('10.0.0.1', 80, { zone: 'z1' }), ep('10.0.0.2', 80, { zone: 'z2', terminating: true, serving: true })]), svc('b', [ep('10.0.0.3', 80)])]));
    const c = h.client('delta');
    c.send({ node: { id: 'n-1', cluster: 'edge' }, type_url: TypeUrl.Cluster });
    await c.next();
    await eventually(async () => JSON.parse((await get('/status/nodes?limit=10')).text).total === 1, 'the stream shows');
    const page = JSON.parse((await get('/status/nodes?limit=10&q=N-')).text);
    expect(page).to.include({ total: 1, matched: 1, offset: 0 });
    expect(page.nodes[0].types.cds).to.include({ sync: 'pending', subscribedCount: 1 }).and.not.have.property('subscribed');
    expect(h.server.nodes({ maxNames: 0 })[0]!.types['cds']!.subscribed, 'no names asked for, none listed, not even the wildcard').to.deep.equal([]);
    expect(JSON.parse((await get('/status/nodes?q=nobody')).text)).to.include({ total: 1, matched: 0 });
    const services = JSON.parse((await get('/status/services?q=a')).text);
    expect(services).to.include({ total: 2, matched: 1 });
    expect(services.services[0]).to.deep.include({ name: 'a', endpoints: { healthy: 1, draining: 1, notReady: 0 }, zones: { z1: { healthy: 1, draining: 0, notReady: 0 }, z2: { healthy: 0, draining: 1, notReady: 0 } }, activeRequests: null });
    for (const [query, error] of [
      ['/status/nodes?limit=0', 'limit must be a whole number from 1 to 1000, got "0"'],
      ['/status/nodes?limit=5000', 'limit must be a whole number from 1 to 1000, got "5000"'],
      ['/status/services?offset=-1', 'offset must be a whole number, got "-1"'],
      ['/status/fleet?reporters=many', 'reporters must be a whole number, got "many"'],
    ]) {
      const r = await get(query!);
      expect(r.status, query).to.equal(400);
      expect(JSON.parse(r.text).error).to.equal(error);
    }
  });

  it('serves the status page on / as one self-contained document: no outside address, a strict content policy', async () => {
    const r = await fetch(`http://127.0.0.1:${admin.port}/`);
    expect(r.status).to.equal(200);
    expect(r.headers.get('content-type')).to.equal('text/html; charset=utf-8');
    expect(r.headers.get('content-security-policy')).to.contain("default-src 'self'");
    const html = await r.text();
    expect(html).to.contain('<title>inferplane status</title>');
    expect(html.match(/(src|href)="(?!data:)[^"]*"/g), 'nothing loaded from anywhere').to.equal(null);
    expect(html).not.to.match(/https?:\/\//);
  });
});
