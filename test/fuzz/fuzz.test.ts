import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { createMemoryLogger } from '../../src/observability/log.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { decodeStreamMetrics } from '../../src/scaler/metrics-service.js';
import { readPolicy } from '../../src/scaler/policy.js';
import { activeByCluster, createFleetStats, gaugesOf } from '../../src/scaler/stats.js';
import { readAnnotations } from '../../src/sources/kubernetes/annotations.js';
import { parseEndpointsFile } from '../../src/sources/file/endpoints-file.js';
import { translate } from '../../src/translate/translate.js';
import { createSnapshotCache } from '../../src/xds/cache.js';
import { DeltaStream } from '../../src/xds/delta.js';
import { messageType } from '../../src/xds/protos.js';
import { createPublisher } from '../../src/xds/publisher.js';
import { decodeDeltaDiscoveryRequest, decodeDiscoveryRequest } from '../../src/xds/request.js';
import { TypeUrl } from '../../src/xds/resources.js';
import { buildSnapshot } from '../../src/xds/snapshot.js';
import { SotwStream } from '../../src/xds/sotw.js';
import { DEFAULT_LIMITS, type StreamDeps } from '../../src/xds/stream.js';
import { ep, model, svc } from '../support/builders.js';
import { report } from '../support/envoy-stats.js';

/**
 * Seeded, reproducible fuzzing of everything that parses outside input: the xDS request decoders feeding the real
 * SotW and Delta stream logic, the MetricsService decoder feeding the stats table, the endpoints file, Service
 * annotations and the scaling policy. Each target takes FUZZ_RUNS (default 10,000) inputs mutated from valid
 * seeds; none may throw, leave an unhandled rejection, or grow memory without bound, and what a parser accepts
 * must also be served (a valid endpoints file always makes a consistent snapshot). A failing input is saved
 * under test/fuzz/regressions/<target>/ and replayed first on every later run.
 */
const RUNS = Number(process.env['FUZZ_RUNS'] ?? 10_000);
const SEED = Number(process.env['FUZZ_SEED'] ?? 20261130);
const ROOT = path.join(import.meta.dirname, '../..');
const REGRESSIONS = path.join(import.meta.dirname, 'regressions');

/** mulberry32: a small seeded generator, so every run sees the same inputs. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Text fragments that matter to YAML and to our fields: anchors, aliases, merges, flow syntax, odd scalars. */
const TOKENS = ['&a ', '*a', '<<: *a', '{', '}', '[', ']', ': ', ',', '\n  ', '\n- ', '- ', '#', '"', "'", '!!str ', '!!binary ', '~', 'null', '.inf', '-1', '0', '1e309', '99999999999999999999', '65536', '::1', '10.0.0.1', '/', 'services:', 'endpoints:', 'settings:', 'timeout: ', '1h', '0ms', '\u0000', '\uFFFF', '\t'];

/** One mutation of `input`, chosen by `r`: bit flips, byte changes, cuts, repeats, splices, inserted tokens. */
function mutate(input: Buffer, r: () => number, seeds: readonly Buffer[], text: boolean): Buffer {
  const b = Buffer.from(input);
  const at = () => Math.floor(r() * (b.length + 1));
  const times = 1 + Math.floor(r() * 4);
  let out = b;
  for (let i = 0; i < times; i++) {
    const p = Math.min(at(), Math.max(0, out.length - 1));
    switch (Math.floor(r() * (text ? 8 : 7))) {
      case 0: if (out.length) out[p] = out[p]! ^ (1 << Math.floor(r() * 8)); break;
      case 1: if (out.length) out[p] = Math.floor(r() * 256); break;
      case 2: out = Buffer.concat([out.subarray(0, p), out.subarray(Math.min(out.length, p + 1 + Math.floor(r() * 16)))]); break;
      case 3: out = out.subarray(0, p); break;
      case 4: { const len = Math.floor(r() * 32); out = Buffer.concat([out.subarray(0, p), out.subarray(p, p + len), out.subarray(p)]); break; }
      case 5: { const other = seeds[Math.floor(r() * seeds.length)]!; const q = Math.floor(r() * other.length); out = Buffer.concat([out.subarray(0, p), other.subarray(q, q + Math.floor(r() * 64))]); break; }
      case 6: out = Buffer.concat([out.subarray(0, p), Buffer.from(Array.from({ length: 1 + Math.floor(r() * 8) }, () => Math.floor(r() * 256))), out.subarray(p)]); break;
      default: out = Buffer.concat([out.subarray(0, p), Buffer.from(TOKENS[Math.floor(r() * TOKENS.length)]!), out.subarray(p)]);
    }
  }
  return out;
}

/** Runs `check` on the saved regressions of `target`, then on RUNS mutations of `seeds`; saves what fails. */
async function fuzz(target: string, seeds: readonly Buffer[], check: (input: Buffer) => void | Promise<void>, text = false): Promise<void> {
  const dir = path.join(REGRESSIONS, target);
  const saved = fs.existsSync(dir) ? fs.readdirSync(dir).sort().map((f) => fs.readFileSync(path.join(dir, f))) : [];
  const r = rng(SEED ^ [...target].reduce((h, c) => Math.imul(h, 31) + c.charCodeAt(0), 7));
  const heapBefore = process.memoryUsage().heapUsed;
  const inputs = function* () {
    yield* saved;
    yield* seeds;
    for (let i = 0; i < RUNS; i++) yield mutate(seeds[Math.floor(r() * seeds.length)]!, r, seeds, text);
  };
  let n = 0;
  for (const input of inputs()) {
    try {
      await check(input);
    } catch (e) {
      fs.mkdirSync(dir, { recursive: true });
      const file = path.join(dir, `${createHash('sha256').update(input).digest('hex').slice(0, 16)}.bin`);
      fs.writeFileSync(file, input);
      throw new Error(`${target}: input ${n} (saved as ${path.relative(ROOT, file)}, base64 ${input.toString('base64').slice(0, 200)}) failed: ${e instanceof Error ? e.stack : String(e)}`);
    }
    // Let scheduled work (stream flushes) run, so what it throws is caught here.
    if (++n % 200 === 0) await new Promise((res) => setImmediate(res));
  }
  global.gc?.();
  expect(process.memoryUsage().heapUsed - heapBefore, `${target}: heap growth`).to.be.below(256 * 2 ** 20);
}

describe(`fuzzing the input paths (${RUNS} mutated inputs per target, seed ${SEED}; FUZZ_RUNS and FUZZ_SEED change them)`, function () {
  this.timeout(300_000);

  it('xDS: SotW and Delta requests through the decoders into the real stream logic', async () => {
    const cache = createSnapshotCache();
    const log = createMemoryLogger();
    const metrics = createMetrics();
    await createPublisher({ cache, log, metrics }).publish(model([svc('a', [ep('10.0.0.1', 80)]), svc('b', [ep('10.0.0.2', 80)])]));
    const deps: StreamDeps = { cache, log, metrics, limits: DEFAULT_LIMITS, controlPlane: 'fuzz', onOpen: () => {}, onClose: () => {} };
    const transport = { write: () => true, close: () => {} };
    const Sotw = messageType('envoy.service.discovery.v3.DiscoveryRequest');
    const Delta = messageType('envoy.service.discovery.v3.DeltaDiscoveryRequest');
    const node = { id: 'fuzz', cluster: 'edge', metadata: { fields: { 'inferplane.io/stats-url': { string_value: 'http://127.0.0.1:9901' } } } };
    const sotwSeeds = [
      { node, type_url: TypeUrl.Cluster },
      { node, type_url: TypeUrl.Endpoint, resource_names: ['a/http', 'b/http', '*'] },
      { type_url: TypeUrl.Cluster, version_info: 'v', response_nonce: '1', error_detail: { code: 3, message: 'rejected' } },
      { type_url: TypeUrl.Listener, version_info: 'v', response_nonce: '1' },
    ].map((m) => Buffer.from(Sotw.encode(Sotw.fromObject(m)).finish()));
    const deltaSeeds = [
      { node, type_url: TypeUrl.Cluster, initial_resource_versions: { 'a/http': 'x' } },
      { node, type_url: TypeUrl.Endpoint, resource_names_subscribe: ['a/http', 'later'], resource_names_unsubscribe: ['b/http'] },
      { type_url: TypeUrl.Route, response_nonce: '1', error_detail: { code: 13, message: 'nope' } },
    ].map((m) => Buffer.from(Delta.encode(Delta.fromObject(m)).finish()));
    const variants = [
      { target: 'xds-sotw', seeds: sotwSeeds, stream: () => new SotwStream('ads', deps, transport), decode: decodeDiscoveryRequest },
      { target: 'xds-delta', seeds: deltaSeeds, stream: () => new DeltaStream('ads', deps, transport), decode: decodeDeltaDiscoveryRequest },
    ];
    for (const v of variants) {
      await fuzz(v.target, v.seeds, (input) => {
        // Both as a first request and after a valid one.
        const first = v.stream();
        first.receive(v.decode(input) as any);
        const later = v.stream();
        later.receive(v.decode(v.seeds[0]!) as any);
        later.receive(v.decode(input) as any);
        first.ended();
        setImmediate(() => later.ended());
      });
    }
  });

  it('MetricsService: stats messages through the decoder into the fleet stats', async () => {
    const Msg = messageType('envoy.service.metrics.v3.StreamMetricsMessage');
    const stamped = { identifier: { node: { id: 'e' } }, envoy_metrics: [
      { name: 'cluster.upstream_rq_active', type: 'GAUGE', metric: [{ label: [{ name: 'envoy.cluster_name', value: 'llama-3' }], gauge: { value: 4 }, timestamp_ms: 1796058602562 }] },
      { name: 'cluster.x.upstream_cx_total', type: 'COUNTER', metric: [{ counter: { value: 9 }, timestamp_ms: 1796058602562 }] },
    ] };
    const seeds = [report('envoy-1', { 'a/http': 3, 'b/http': 1e12 }), stamped, report(undefined, { 'a/http': 0 })].map((m) => Buffer.from(Msg.encode(Msg.fromObject(m)).finish()));
    const stats = createFleetStats({ minIntervalMs: 0 });
    let at = 0;
    await fuzz('metrics-service', seeds, (input) => {
      let msg;
      try {
        msg = decodeStreamMetrics(input);
      } catch {
        return; // refused as malformed by the service, with a status and a count
      }
      expect(msg.timestampMs === undefined || Number.isFinite(msg.timestampMs)).to.equal(true);
      const { active, rejectedClusters } = activeByCluster(gaugesOf(msg.envoy_metrics ?? []));
      stats.record(String(msg.identifier?.node?.id ?? 'x'), (at += 300), active, { keep: rejectedClusters, ...(msg.timestampMs !== undefined && { flush: msg.timestampMs }) });
      stats.sample('a', at, 10_000);
    });
  });

  it('the endpoints file: refused with problems, or served as a consistent snapshot', async () => {
    const seeds = ['examples/endpoints.yaml', 'examples/compose-endpoints.yaml'].map((f) => fs.readFileSync(path.join(ROOT, f)));
    await fuzz('endpoints-file', seeds, (input) => {
      const parsed = parseEndpointsFile(input.toString('utf8'), 'fuzz.yaml');
      if (!parsed.ok) {
        expect(parsed.error.length).to.be.above(0);
        return;
      }
      const snap = buildSnapshot(translate(parsed.value));
      if (!snap.ok) throw new Error(`a valid endpoints file made an invalid snapshot: ${snap.error.join('; ')}`);
    }, true);
  });

  it('Service annotations', async () => {
    const seeds = [
      'timeout: 30s\nretries: 3\nretry-on: connect-failure,reset\noutlier-detection: "{consecutive5xx: 3}"\nroutes: "[{prefix: /v1, headers: {x-model: a}}]"\nload-balancing: round-robin\n',
      'health-check: "true"\nslow-start: "{window: 10s}"\nretriable-status-codes: 503,504\nmax-requests: 1000\n',
    ].map((t) => Buffer.from(t));
    await fuzz('annotations', seeds, (input) => {
      const annotations: Record<string, string> = {};
      for (const line of input.toString('utf8').split('\n')) {
        const i = line.indexOf(': ');
        if (i > 0) annotations[`inferplane.io/${line.slice(0, i)}`] = line.slice(i + 2).replace(/^"|"$/g, '');
      }
      readAnnotations(annotations, 'ns/a', ['http', 'grpc']);
    }, true);
  });

  it('the scaling policy', async () => {
    const seeds = ['examples/scaling-policy.yaml', 'examples/compose-scaling-policy.yaml'].map((f) => fs.readFileSync(path.join(ROOT, f)));
    await fuzz('policy', seeds, (input) => void readPolicy(input.toString('utf8')), true);
  });
});
