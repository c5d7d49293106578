import { expect } from 'chai';
import { TypeUrl } from '../../src/xds/resources.js';
import { MAX_RESPONSE_BYTES } from '../../src/xds/snapshot.js';
import { PART_BYTES } from '../../src/xds/stream.js';
import { ep, model, svc } from '../support/builders.js';
import { eventually, startHarness, type Harness } from '../support/harness.js';
import { sentBeforeProbe } from '../support/probe.js';
import type { RecordingXdsClient, SeenResponse } from '../support/xds-client.js';

const LIMIT = 64 * 1024;
/** The client refuses anything bigger than the server may send: an oversized response fails the stream. */
const CLIENT = { 'grpc.max_receive_message_length': LIMIT };
const NODE = { id: 'envoy-1', cluster: 'edge' };

/** `services` services of `endpoints` endpoints each (about 25 bytes per endpoint once encoded). */
function fleet(services: number, endpoints: number, prefix = 's') {
  return model(Array.from({ length: services }, (_, s) => svc(`${prefix}${s}`, Array.from({ length: endpoints }, (_, e) => ep(`10.${s >> 8}.${s & 255}.${e & 255}`, 8000 + (e >> 8))))));
}
const edsNames = (services: number, prefix = 's') => Array.from({ length: services }, (_, s) => `${prefix}${s}/http`);

/** Waits until the EDS responses seen from `from` on name every one of `names`; returns those responses. */
async function assignments(c: RecordingXdsClient, names: string[], from = 0): Promise<SeenResponse[]> {
  const eds = () => c.responses.slice(from).filter((r) => r.typeUrl === TypeUrl.Endpoint);
  await eventually(() => names.every((n) => eds().some((r) => r.resources.some((x) => x.name === n))), `assignments of ${names.length} clusters`);
  return eds();
}

describe('responses too big for one gRPC message (issue 13)', () => {
  let h: Harness;
  afterEach(() => h?.stop());

  it('splits a SotW EDS answer into responses under the limit, one version, the last one ACKed', async () => {
    h = await startHarness(fleet(20, 400), { limits: { maxResponseBytes: LIMIT } });
    const c = h.client('sotw', 'ads', CLIENT);
    c.send({ node: NODE, type_url: TypeUrl.Endpoint, resource_names: edsNames(20) });
    const parts = await assignments(c, edsNames(20));
    expect(parts.length).to.be.greaterThan(2);
    expect(new Set(parts.map((r) => r.versionInfo)).size).to.equal(1);
    expect(parts.flatMap((r) => r.resources.map((x) => x.name)).sort()).to.deep.equal(edsNames(20).sort());
    for (const r of parts) c.send({ type_url: TypeUrl.Endpoint, version_info: r.versionInfo, response_nonce: r.nonce, resource_names: edsNames(20) });
    await eventually(() => h.server.nodes()[0]?.types['eds']?.ackedVersion === parts[0]!.versionInfo, 'the answer ACKed');
    expect(await sentBeforeProbe(c, parts.length)).to.deep.equal([]);
  });

  it('records a NACK of any part of a split answer, not only of its last response', async () => {
    h = await startHarness(fleet(20, 400), { limits: { maxResponseBytes: LIMIT } });
    const c = h.client('sotw', 'ads', CLIENT);
    c.send({ node: NODE, type_url: TypeUrl.Endpoint, resource_names: edsNames(20) });
    const [first] = await assignments(c, edsNames(20));
    c.send({ type_url: TypeUrl.Endpoint, version_info: '', response_nonce: first!.nonce, resource_names: edsNames(20), error_detail: { code: 3, message: 'bad assignment' } });
    await eventually(() => h.server.nodes()[0]?.types['eds']?.lastNack?.nonce === first!.nonce, 'the NACK recorded');
    expect(await h.metrics.value('inferplane_xds_nacks_total', { type: 'eds' })).to.equal(1);
  });

  it('splits a Delta answer the same way, removals in its last response', async () => {
    h = await startHarness(fleet(20, 400), { limits: { maxResponseBytes: LIMIT } });
    const c = h.client('delta', 'ads', CLIENT);
    c.send({ node: NODE, type_url: TypeUrl.Endpoint, resource_names_subscribe: edsNames(20) });
    const parts = await assignments(c, edsNames(20));
    expect(parts.length).to.be.greaterThan(2);
    for (const r of parts) c.send({ type_url: TypeUrl.Endpoint, response_nonce: r.nonce });
    const from = c.responses.length;
    // Every remaining assignment changes (new port) and five services go.
    await h.publish(model(Array.from({ length: 15 }, (_, s) => svc(`s${s}`, Array.from({ length: 400 }, (_, e) => ep(`10.${s}.${e >> 8}.${e & 255}`, 9000))))));
    const changed = await assignments(c, edsNames(15), from);
    await eventually(() => c.responses.slice(from).some((r) => r.removed.length > 0), 'the removals');
    const all = c.responses.slice(from);
    expect(changed.length).to.be.greaterThan(1);
    expect(all.flatMap((r) => r.removed).sort()).to.deep.equal(edsNames(20).slice(15).sort());
    expect(all[all.length - 1]!.removed.length).to.equal(5);
    expect(await sentBeforeProbe(c, c.responses.length), 'the stream is still open').to.deep.equal([]);
  });

  it('refuses, keeping the last good snapshot, a configuration with one assignment or all of CDS over the limit', async () => {
    h = await startHarness(fleet(2, 10), { limits: { maxResponseBytes: LIMIT } });
    const before = h.cache.get('default')!.version;
    const oneTooBig = await h.publisher.publish(fleet(1, 3000, 'big'));
    expect(oneTooBig.ok).to.equal(false);
    expect(!oneTooBig.ok && oneTooBig.error.join('\n')).to.match(/ClusterLoadAssignment "big0\/http" encodes to [\d,]+ bytes; one xDS response carries it whole and must stay under 65,536 bytes/);
    const cdsTooBig = await h.publisher.publish(fleet(600, 1));
    expect(!cdsTooBig.ok && cdsTooBig.error.join('\n')).to.match(/the 600 Clusters encode to [\d,]+ bytes together; a state-of-the-world CDS response carries every one of them/);
    expect(h.cache.get('default')!.version).to.equal(before);
    // The endpoint fast path checks too.
    const fast = await h.publisher.publish(fleet(2, 3000), new Set(['s0', 's1']));
    expect(fast.ok).to.equal(false);
    expect(h.cache.get('default')!.version).to.equal(before);
  });

  it('serves the issue\'s 176,000 endpoints (4.3 MB of EDS) to a grpc-js client at its default 4 MiB limit', async function () {
    this.timeout(60_000);
    h = await startHarness(fleet(44, 4000));
    let total = 0;
    for (const r of h.cache.get('default')!.types[TypeUrl.Endpoint].resources.values()) total += r.sotw.length;
    expect(total).to.be.greaterThan(MAX_RESPONSE_BYTES);
    const c = h.client('sotw');
    c.send({ node: NODE, type_url: TypeUrl.Endpoint, resource_names: edsNames(44) });
    const parts = await assignments(c, edsNames(44));
    // Split at PART_BYTES, well under the limit, so each response is completed and written in a slice of its own.
    expect(parts.length).to.equal(Math.ceil(total / PART_BYTES));
    expect(await sentBeforeProbe(c, c.responses.length), 'the stream is still open').to.deep.equal([]);
  });
});
