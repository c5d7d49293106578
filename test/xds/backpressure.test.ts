import { expect } from 'chai';
import { createMemoryLogger } from '../../src/observability/log.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { fullGc } from '../../src/observability/memory.js';
import { createSnapshotCache } from '../../src/xds/cache.js';
import { createPublisher } from '../../src/xds/publisher.js';
import { decodeToObject } from '../../src/xds/protos.js';
import { TypeUrl } from '../../src/xds/resources.js';
import { SotwStream } from '../../src/xds/sotw.js';
import { DEFAULT_LIMITS, type StreamDeps } from '../../src/xds/stream.js';
import { ep, model, svc } from '../support/builders.js';
import { eventually } from '../support/harness.js';

describe('a slow client (stream core over an in-memory transport that reports backpressure)', () => {
  it('gets the latest state once it drains, not a queue of every intermediate one', async () => {
    const cache = createSnapshotCache();
    const log = createMemoryLogger();
    const metrics = createMetrics();
    const publisher = createPublisher({ cache, log, metrics });
    const endpointsAt = (n: number) => model([svc('a', Array.from({ length: n }, (_, i) => ep(`10.0.${i >> 8}.${i & 255}`, 80)))]);
    await publisher.publish(endpointsAt(1));
    const frames: Buffer[] = [];
    let full = true;
    const deps: StreamDeps = { cache, log, metrics, limits: { ...DEFAULT_LIMITS, maxNamesPerRequest: 100, maxNamesPerStream: 1000 }, controlPlane: 't', onOpen: () => {}, onClose: () => {} };
    const stream = new SotwStream('ads', deps, { write: (f) => (frames.push(f), !full), close: () => {} });
    stream.receive({ node: { id: 'slow', cluster: '' } as any, type_url: TypeUrl.Endpoint, resource_names: ['a/http'], response_nonce: '', version_info: '', error_detail: null } as any);
    await eventually(() => frames.length === 1, 'first response');
    for (let n = 2; n <= 200; n++) void publisher.publish(endpointsAt(n));
    await new Promise((r) => setImmediate(r));
    expect(frames).to.have.length(1); // the transport is full: nothing more is queued
    full = false;
    stream.drained();
    await eventually(() => frames.length === 2, 'one catch-up response');
    await new Promise((r) => setImmediate(r));
    expect(frames).to.have.length(2);
    const response = decodeToObject('envoy.service.discovery.v3.DiscoveryResponse', frames[1]!) as any;
    expect(response.version_info).to.equal(cache.get('default')!.types[TypeUrl.Endpoint].version);
    expect(response.resources[0].endpoints[0].lb_endpoints).to.have.length(200);
  });
});

describe('a long-lived stream (stream core over an in-memory transport, collected with a real full GC)', () => {
  it('lets every past configuration be collected: each change is worked out against the last, not kept with it', async function () {
    const gc = fullGc();
    if (!gc) this.skip(); // this V8 refuses --expose-gc at run time; nothing to measure with
    const cache = createSnapshotCache();
    const publisher = createPublisher({ cache, log: createMemoryLogger(), metrics: createMetrics() });
    const endpointsAt = (n: number) => model([svc('a', [ep(`10.0.0.${n}`, 80)]), svc('b', [ep('10.0.1.1', 80)])]);
    await publisher.publish(endpointsAt(1));
    const frames: Buffer[] = [];
    const deps: StreamDeps = { cache, log: createMemoryLogger(), metrics: createMetrics(), limits: DEFAULT_LIMITS, controlPlane: 't', onOpen: () => {}, onClose: () => {} };
    const stream = new SotwStream('ads', deps, { write: (f) => (frames.push(f), true), close: () => {} });
    stream.receive({ node: { id: 'long-lived', cluster: '' } as any, type_url: TypeUrl.Endpoint, resource_names: ['a/http', 'b/http'], response_nonce: '', version_info: '', error_detail: null } as any);
    await eventually(() => frames.length === 1, 'first response');
    const past: WeakRef<object>[] = [];
    for (let n = 2; n <= 6; n++) {
      past.push(new WeakRef(cache.get('default')!.types[TypeUrl.Endpoint]));
      await publisher.publish(endpointsAt(n));
      await eventually(() => frames.length === n, `response ${n}`); // each change answered through the delta path
    }
    await new Promise((r) => setTimeout(r, 0)); // WeakRefs hold their targets until the current job ends
    gc!();
    expect(past.map((w) => w.deref() === undefined)).to.deep.equal([true, true, true, true, true]);
  });
});

describe('requests past the turn\'s slice (stream core over an in-memory transport)', () => {
  it('are handled in a later turn, each stream\'s in the order they came', async () => {
    const cache = createSnapshotCache();
    const publisher = createPublisher({ cache, log: createMemoryLogger(), metrics: createMetrics() });
    await publisher.publish(model([svc('a', [ep('10.0.0.1', 80)]), svc('b', [ep('10.0.1.1', 80)])]));
    const frames: Buffer[] = [];
    const deps: StreamDeps = { cache, log: createMemoryLogger(), metrics: createMetrics(), limits: DEFAULT_LIMITS, controlPlane: 't', onOpen: () => {}, onClose: () => {} };
    const stream = new SotwStream('ads', deps, { write: (f) => (frames.push(f), true), close: () => {} });
    const request = (names: string[]) => ({ node: { id: 'n', cluster: '' } as any, type_url: TypeUrl.Endpoint, resource_names: names, response_nonce: '', version_info: '', error_detail: null }) as any;
    stream.receive(request(['a/http']));
    expect(stream.node?.id).to.equal('n'); // the turn's first request: at once
    // The slice of this turn used up (a fleet's worth of requests before these):
    for (const until = performance.now() + 25; performance.now() < until;);
    stream.receive(request(['b/http']));
    stream.receive(request(['a/http', 'b/http']));
    expect(stream.typeStatus()['eds']!.subscribed).to.deep.equal(['a/http']); // not yet
    await eventually(() => stream.typeStatus()['eds']!.subscribed.length === 2, 'the queued requests handled');
    expect(stream.typeStatus()['eds']!.subscribed).to.deep.equal(['a/http', 'b/http']); // the last one came last
    await eventually(() => frames.length > 0, 'a response');
    const last = decodeToObject('envoy.service.discovery.v3.DiscoveryResponse', frames[frames.length - 1]!) as any;
    expect(last.resources.map((r: any) => r.cluster_name).sort()).to.include('b/http');
  });
});

describe('an answer split over several responses (stream core over an in-memory transport)', () => {
  it('writes them one slice at a time: the loop turns between responses once the slice is used', async () => {
    const cache = createSnapshotCache();
    const publisher = createPublisher({ cache, log: createMemoryLogger(), metrics: createMetrics() });
    await publisher.publish(model(Array.from({ length: 8 }, (_, s) => svc(`s${s}`, Array.from({ length: 400 }, (_, e) => ep(`10.${s}.${e >> 8}.${e & 255}`, 80))))));
    const seen: string[] = [];
    const deps: StreamDeps = { cache, log: createMemoryLogger(), metrics: createMetrics(), limits: { ...DEFAULT_LIMITS, maxResponseBytes: 32 * 1024 }, controlPlane: 't', onOpen: () => {}, onClose: () => {} };
    const frames: Buffer[] = [];
    // Each write takes longer than a slice (a megabyte-sized response on a loaded machine).
    const stream = new SotwStream('ads', deps, { write: (f) => { frames.push(f); seen.push('write'); for (const until = performance.now() + 25; performance.now() < until;); return true; }, close: () => {} });
    let turning = true;
    const turn = () => { seen.push('turn'); if (turning) setImmediate(turn); };
    setImmediate(turn);
    const names = Array.from({ length: 8 }, (_, s) => `s${s}/http`);
    stream.receive({ node: { id: 'n', cluster: '' } as any, type_url: TypeUrl.Endpoint, resource_names: names, response_nonce: '', version_info: '', error_detail: null } as any);
    const nonceOf = (f: Buffer) => (decodeToObject('envoy.service.discovery.v3.DiscoveryResponse', f) as any).nonce;
    try {
      await eventually(() => frames.length > 0 && nonceOf(frames[frames.length - 1]!) === stream.typeStatus()['eds']!.pendingNonce, 'every response written');
    } finally {
      turning = false;
    }
    expect(frames.length).to.be.greaterThan(2);
    const writes = seen.map((e, i) => [e, i] as const).filter(([e]) => e === 'write').map(([, i]) => i);
    for (let k = 1; k < writes.length; k++) expect(seen.slice(writes[k - 1]! + 1, writes[k]), `between responses ${k} and ${k + 1}`).to.include('turn');
    const got = frames.flatMap((f) => (decodeToObject('envoy.service.discovery.v3.DiscoveryResponse', f) as any).resources.map((r: any) => r.cluster_name));
    expect(got.sort()).to.deep.equal([...names].sort());
  });
});

describe('shared responses (stream core over in-memory transports)', () => {
  const setup = async () => {
    const cache = createSnapshotCache();
    await createPublisher({ cache, log: createMemoryLogger(), metrics: createMetrics() }).publish(model([svc('a', [ep('10.0.0.1', 80)]), svc('b', [ep('10.0.1.1', 80)])]));
    const deps: StreamDeps = { cache, log: createMemoryLogger(), metrics: createMetrics(), limits: DEFAULT_LIMITS, controlPlane: 't', onOpen: () => {}, onClose: () => {} };
    const open = () => {
      const written: Buffer[] = [];
      return { written, stream: new SotwStream('ads', deps, { write: (f) => (written.push(f), true), close: () => {} }) };
    };
    return { open };
  };
  const cds = (names: string[], nonce = '') => ({ node: { id: 'n', cluster: '' } as any, type_url: TypeUrl.Cluster, resource_names: names, response_nonce: nonce, version_info: '', error_detail: null }) as any;
  const decode = (f: Buffer) => decodeToObject('envoy.service.discovery.v3.DiscoveryResponse', f) as any;

  it('are the same bytes on every stream with the same subscription: nothing is copied per stream', async () => {
    const { open } = await setup();
    const [x, y] = [open(), open()];
    x.stream.receive(cds([]));
    y.stream.receive(cds([]));
    await eventually(() => x.written.length === 1 && y.written.length === 1, 'both answered');
    expect(x.written[0]).to.equal(y.written[0]); // one Buffer, nonce included
    expect(decode(x.written[0]!).resources).to.have.length(2);
  });

  it('carry a fresh nonce when a stream is sent the same answer again, so the earlier one\'s ACK is not taken for it', async () => {
    const { open } = await setup();
    const x = open();
    x.stream.receive(cds(['*']));
    await eventually(() => x.written.length === 1, 'first answer');
    const first = decode(x.written[0]!);
    // Naming a cluster that does not exist changes the subscription but not what it holds: the same answer.
    x.stream.receive(cds(['*', 'missing'], first.nonce));
    await eventually(() => x.written.length === 2, 'second answer');
    const second = decode(x.written[1]!);
    expect(second.version_info).to.equal(first.version_info);
    expect(second.resources).to.deep.equal(first.resources);
    expect(second.nonce).to.not.equal(first.nonce);
    expect(x.stream.typeStatus()['cds']!.pendingNonce).to.equal(second.nonce);
    // The late ACK of the first answer is stale: the second stays pending.
    x.stream.receive(cds(['*', 'missing'], first.nonce));
    await new Promise((r) => setImmediate(r));
    expect(x.stream.typeStatus()['cds']!.pendingNonce).to.equal(second.nonce);
  });
});
