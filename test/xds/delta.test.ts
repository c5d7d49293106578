import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { TypeUrl } from '../../src/xds/resources.js';
import { ep, model, svc } from '../support/builders.js';
import { startHarness, type Harness } from '../support/harness.js';
import { sentBeforeProbe } from '../support/probe.js';
import type { RecordingXdsClient, SeenResponse } from '../support/xds-client.js';

const NODE = { id: 'envoy-d', cluster: 'edge' };
const base = () => model([svc('a', [ep('10.0.0.1', 80)]), svc('b', [ep('10.0.0.2', 80)])]);
const names = (r: SeenResponse) => r.resources.map((x) => x.name);
const ack = (c: RecordingXdsClient, r: SeenResponse, extra: Record<string, unknown> = {}) => c.send({ type_url: r.typeUrl, response_nonce: r.nonce, ...extra });

describe('Delta ADS (recording client on the real gRPC server)', () => {
  let h: Harness;
  beforeEach(async () => (h = await startHarness(base())));
  afterEach(() => h.stop());

  it('answers a first request with no names as a wildcard, each resource with its own version', async () => {
    const c = h.client('delta');
    c.send({ node: NODE, type_url: TypeUrl.Cluster });
    const r = await c.next();
    expect(names(r)).to.deep.equal(['a/http', 'b/http']);
    const snap = h.cache.get('default')!.types[TypeUrl.Cluster];
    expect(r.resources.map((x) => x.version)).to.deep.equal([snap.resources.get('a/http')!.version, snap.resources.get('b/http')!.version]);
    expect(r.versionInfo).to.equal(snap.version);
  });

  it('sends only what changed, and removed_resources for what is gone', async () => {
    const c = h.client('delta');
    c.send({ node: NODE, type_url: TypeUrl.Endpoint, resource_names_subscribe: ['a/http', 'b/http'] });
    ack(c, await c.next());
    await h.publish(model([svc('a', [ep('10.0.0.1', 80), ep('10.0.0.5', 80)]), svc('b', [ep('10.0.0.2', 80)])]));
    const r = await c.next((x) => x.resources.length > 0, 1);
    expect(names(r)).to.deep.equal(['a/http']);
    expect(r.removed).to.deep.equal([]);
    ack(c, r);
    await h.publish(model([svc('a', [ep('10.0.0.1', 80), ep('10.0.0.5', 80)])]));
    const gone = await c.next((x) => x.removed.length > 0, 2);
    expect(gone.removed).to.deep.equal(['b/http']);
    expect(gone.resources).to.deep.equal([]);
  });

  it('sends each stream in sync its own answer when a changed cluster forces an assignment another stream did not get', async () => {
    // c1 is answered first with the change's one assignment (a/http); c2 does not hold a/http but must get
    // b/http again, because its cluster changed (a warming cluster waits for it), though the answer has the same size.
    const [c1, c2] = [h.client('delta'), h.client('delta')];
    for (const [c, eds] of [[c1, 'a/http'], [c2, 'b/http']] as const) {
      c.send({ node: NODE, type_url: TypeUrl.Cluster });
      ack(c, await c.next((x) => x.typeUrl === TypeUrl.Cluster));
      c.send({ type_url: TypeUrl.Endpoint, resource_names_subscribe: [eds] });
      ack(c, await c.next((x) => x.typeUrl === TypeUrl.Endpoint));
    }
    const [from1, from2] = [c1.responses.length, c2.responses.length];
    await h.publish(model([svc('a', [ep('10.0.0.1', 80), ep('10.0.0.5', 80)]), svc('b', [ep('10.0.0.2', 80)], { settings: { connectTimeout: '7s' } })]));
    expect(names(await c1.next((x) => x.typeUrl === TypeUrl.Endpoint, from1))).to.deep.equal(['a/http']);
    expect(names(await c2.next((x) => x.typeUrl === TypeUrl.Cluster, from2))).to.deep.equal(['b/http']);
    expect(names(await c2.next((x) => x.typeUrl === TypeUrl.Endpoint, from2))).to.deep.equal(['b/http']);
  });

  it('honours subscribe and unsubscribe even when the nonce is stale', async () => {
    const c = h.client('delta');
    c.send({ node: NODE, type_url: TypeUrl.Endpoint, resource_names_subscribe: ['a/http'] });
    const r1 = await c.next();
    await h.publish(model([svc('a', [ep('10.0.0.1', 80), ep('10.0.0.5', 80)]), svc('b', [ep('10.0.0.2', 80)])]));
    await c.next((x) => x.nonce !== r1.nonce);
    c.send({ type_url: TypeUrl.Endpoint, response_nonce: r1.nonce, resource_names_subscribe: ['b/http'], resource_names_unsubscribe: ['a/http'] });
    const r3 = await c.next((x) => names(x).includes('b/http'), 2);
    expect(names(r3)).to.deep.equal(['b/http']);
    // a/http is no longer subscribed: a change to it is not sent.
    await h.publish(model([svc('a', [ep('10.0.0.1', 80)]), svc('b', [ep('10.0.0.2', 80)])]));
    expect(await sentBeforeProbe(c, c.responses.length)).to.deep.equal([]);
    expect(h.server.nodes()[0]!.types['eds']!.subscribed).to.deep.equal(['b/http']);
  });

  it('on reconnect with initial_resource_versions sends only what changed and what was removed', async () => {
    const c1 = h.client('delta');
    c1.send({ node: NODE, type_url: TypeUrl.Cluster });
    const held = Object.fromEntries((await c1.next()).resources.map((r) => [r.name, r.version!]));
    c1.close();
    await h.publish(model([svc('a', [ep('10.0.0.1', 80)], { settings: { connectTimeout: '3s' } }), svc('c', [])]));
    const c2 = h.client('delta');
    c2.send({ node: NODE, type_url: TypeUrl.Cluster, initial_resource_versions: held });
    const r = await c2.next();
    expect(names(r)).to.deep.equal(['a/http', 'c/http']);
    expect(r.removed).to.deep.equal(['b/http']);
    // Holding exactly the current versions: nothing at all (even an empty answer counts as an update in Envoy).
    const now = Object.fromEntries([...h.cache.get('default')!.types[TypeUrl.Cluster].resources.values()].map((x) => [x.name, x.version]));
    const c3 = h.client('delta');
    c3.send({ node: NODE, type_url: TypeUrl.Cluster, initial_resource_versions: now });
    expect(await sentBeforeProbe(c3, 0)).to.deep.equal([]);
  });

  it('reports a name that does not exist once, then sends it when it appears', async () => {
    const c = h.client('delta');
    c.send({ node: NODE, type_url: TypeUrl.Endpoint, resource_names_subscribe: ['later/http'] });
    const r = await c.next();
    expect(r.removed).to.deep.equal(['later/http']);
    ack(c, r);
    await h.publish(model([svc('a', [ep('10.0.0.1', 80), ep('10.0.0.9', 80)]), svc('b', [ep('10.0.0.2', 80)])]));
    expect(await sentBeforeProbe(c, 1)).to.deep.equal([]);
    await h.publish(model([svc('a', [ep('10.0.0.1', 80)]), svc('b', [ep('10.0.0.2', 80)]), svc('later', [ep('10.0.0.7', 80)])]));
    expect(names(await c.next((x) => x.resources.length > 0, 1))).to.deep.equal(['later/http']);
  });

  it('records a NACK and does not resend', async () => {
    const c = h.client('delta');
    c.send({ node: NODE, type_url: TypeUrl.Cluster });
    const r = await c.next();
    c.send({ type_url: TypeUrl.Cluster, response_nonce: r.nonce, error_detail: { code: 13, message: 'rejected a/http' } });
    expect(await sentBeforeProbe(c, 1)).to.deep.equal([]);
    expect(h.server.nodes()[0]!.types['cds']!.lastNack).to.include({ nonce: r.nonce, message: 'rejected a/http', version: r.versionInfo });
  });

  it('holds a cluster removal until the routes that used it are replaced and ACKed', async () => {
    const c = h.client('delta');
    c.send({ node: NODE, type_url: TypeUrl.Cluster });
    c.send({ type_url: TypeUrl.Route, resource_names_subscribe: ['ingress'] });
    await c.next((r) => r.typeUrl === TypeUrl.Route);
    for (const t of [TypeUrl.Cluster, TypeUrl.Route]) ack(c, c.responses.find((r) => r.typeUrl === t)!);
    const from = c.responses.length;
    await h.publish(model([svc('a', [ep('10.0.0.1', 80)])]));
    const rds = await c.next((r) => r.typeUrl === TypeUrl.Route, from);
    expect(c.responses.slice(from).some((r) => r.removed.includes('b/http'))).to.equal(false);
    ack(c, rds);
    const cds = await c.next((r) => r.typeUrl === TypeUrl.Cluster, from);
    expect(cds.removed).to.deep.equal(['b/http']);
  });

  it('serves Delta on the per-type services', async () => {
    const c = h.client('delta', 'eds');
    c.send({ node: NODE, resource_names_subscribe: ['a/http'] });
    const r = await c.next();
    expect(r.typeUrl).to.equal(TypeUrl.Endpoint);
    expect(names(r)).to.deep.equal(['a/http']);
  });
});

describe('Delta subscriptions per stream', () => {
  it('ends a stream whose subscriptions add up past the per-stream limit, and keeps serving others', async () => {
    const h = await startHarness(base(), { limits: { maxNamesPerRequest: 5, maxNamesPerStream: 8 } });
    try {
      const c = h.client('delta');
      c.send({ node: NODE, type_url: TypeUrl.Endpoint, resource_names_subscribe: ['n1', 'n2', 'n3', 'n4', 'n5'] });
      await c.next();
      c.send({ type_url: TypeUrl.Endpoint, resource_names_subscribe: ['n6', 'n7', 'n8', 'n9', 'n10'] });
      const s = await c.status;
      expect([grpc.status[s.code], s.details]).to.deep.equal(['RESOURCE_EXHAUSTED', 'the stream subscribes to 10 resource names; the limit is 8 (--max-names-per-stream)']);
      const ok = h.client('delta');
      ok.send({ node: NODE, type_url: TypeUrl.Cluster });
      expect(names(await ok.next())).to.deep.equal(['a/http', 'b/http']);
    } finally {
      await h.stop();
    }
  });
});

describe('malformed request bytes', () => {
  let h: Harness;
  before(async () => (h = await startHarness(base())));
  after(() => h.stop());

  it('closes the stream with INVALID_ARGUMENT naming the message that failed to decode', async () => {
    const Raw = grpc.makeGenericClientConstructor({
      Stream: {
        path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources',
        requestStream: true, responseStream: true,
        requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b,
      },
    }, 'Raw');
    const client = new Raw(h.address, grpc.credentials.createInsecure());
    const call = (client as any).Stream();
    const done = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => {});
    call.write(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])); // field 1, absurd length
    const s = await done;
    client.close();
    expect(s.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(s.details).to.contain('cannot decode envoy.service.discovery.v3.DeltaDiscoveryRequest');
  });
});
