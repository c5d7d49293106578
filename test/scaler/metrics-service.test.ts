import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { createMemoryLogger } from '../../src/observability/log.js';
import { serve, type Running } from '../../src/serve.js';
import { DEFAULT_LIMITS } from '../../src/xds/stream.js';
import { envoyStream, report } from '../support/envoy-stats.js';
import { eventually } from '../support/harness.js';

describe("Envoy's MetricsService on the xDS port, and the fleet on the admin server", () => {
  let dir: string;
  let running: Running;
  let address: string;
  const log = createMemoryLogger();
  const get = async (p: string) => (await fetch(`http://127.0.0.1:${running.admin.port}${p}`)).text();
  const fleet = async () => JSON.parse(await get('/status/fleet'));

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-stats-'));
    fs.writeFileSync(path.join(dir, 'e.yaml'), 'services:\n  - name: llama\n    endpoints: [{ address: 10.0.0.1, port: 8000 }]\n  - name: idle\n');
    running = await serve({ discovery: { kind: 'file', path: path.join(dir, 'e.yaml') }, xdsAddress: '127.0.0.1:0', adminHost: '127.0.0.1', adminPort: 0, limits: DEFAULT_LIMITS, maxMessageBytes: 1 << 20, log });
    address = `127.0.0.1:${running.xdsPort}`;
  });
  after(async () => {
    await running.stop(500);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('sums upstream_rq_active across Envoys per service', async () => {
    const a = envoyStream(address);
    const b = envoyStream(address);
    a.send(report('envoy-a', { 'llama/http': 30 }));
    b.send(report('envoy-b', { 'llama/http': 12 }));
    await eventually(async () => JSON.parse(await get('/status/fleet')).services.llama?.envoys === 2, 'two reporters');
    const fleet = JSON.parse(await get('/status/fleet'));
    expect(fleet.services.llama).to.include({ activeRequests: 42, envoys: 2 });
    expect(fleet.services.idle).to.include({ activeRequests: 0, envoys: 2 });
    expect(fleet.reporters.map((r: { nodeId: string }) => r.nodeId)).to.deep.equal(['envoy-a', 'envoy-b']);
    expect(await get('/metrics')).to.contain('inferplane_fleet_active_requests{service="llama"} 42');
    a.end();
    b.end();
    expect(await a.status()).to.equal(null);
    a.close();
    b.close();
  });

  it('refuses a message over --max-stats-message-bytes with RESOURCE_EXHAUSTED, logged and counted (never silently)', async () => {
    const small = await serve({ discovery: { kind: 'file', path: path.join(dir, 'e.yaml') }, xdsAddress: '127.0.0.1:0', adminHost: '127.0.0.1', adminPort: 0, limits: DEFAULT_LIMITS, maxMessageBytes: 1 << 20, maxStatsMessageBytes: 10_000, log });
    try {
      const big = envoyStream(`127.0.0.1:${small.xdsPort}`);
      const clusters = Object.fromEntries(Array.from({ length: 400 }, (_, i) => [`llama-${i}/http`, 1]));
      big.send(report('envoy-big', clusters));
      const status = await big.status();
      expect(status?.code).to.equal(grpc.status.RESOURCE_EXHAUSTED);
      expect(status?.details).to.match(/stats message is over the 10000-byte limit \(--max-stats-message-bytes\)/);
      big.close();
      const line = log.lines.find((l) => l.msg === 'closing metrics stream' && String(l.fields?.['details']).includes('10000-byte'));
      expect(line, 'a log line').to.not.equal(undefined);
      const metrics = await (await fetch(`http://127.0.0.1:${small.admin.port}/metrics`)).text();
      expect(metrics).to.contain('inferplane_stats_reports_total{outcome="too-large"} 1');
      // An xDS request over its own (smaller) limit is still refused as before, though gRPC lets larger ones in.
      const { RecordingXdsClient } = await import('../support/xds-client.js');
      const x = new RecordingXdsClient(`127.0.0.1:${small.xdsPort}`, 'sotw');
      x.send({ node: { id: 'n'.repeat(2 << 20) }, type_url: 'type.googleapis.com/envoy.config.cluster.v3.Cluster' });
      const xs = await x.status;
      expect(xs.code).to.equal(grpc.status.RESOURCE_EXHAUSTED);
      expect(xs.details).to.match(/^a \d+-byte request is larger than the 1048576-byte limit \(--max-message-bytes\)$/);
      x.close();
    } finally {
      await small.stop(500);
    }
  });

  it('refuses a node id over 1,024 characters (reports are kept under it)', async () => {
    const long = envoyStream(address);
    long.send(report('n'.repeat(5000), { 'llama/http': 1 }));
    const status = await long.status();
    expect([status?.code, status?.details]).to.deep.equal([grpc.status.INVALID_ARGUMENT, 'identifier.node.id is 5000 characters; the limit is 1024']);
    long.close();
  });

  it('refuses implausible gauges, keeping the rest of the report', async () => {
    const c = envoyStream(address);
    c.send(report('envoy-c', { 'llama/http': -5 }));
    await eventually(() => log.lines.some((l) => l.msg === 'refused implausible gauges'), 'the refusal is logged');
    expect(JSON.stringify(log.lines.find((l) => l.msg === 'refused implausible gauges')!.fields)).to.contain('llama/http: upstream_rq_active -5 is not a plausible in-flight count');
    expect(await get('/metrics')).to.contain('inferplane_stats_gauges_refused_total 1');
    c.end();
    c.close();
  });

  it('forgets an Envoy whose stream ended (it reports to another replica now)', async () => {
    const e = envoyStream(address);
    e.send(report('envoy-moving', { 'llama/http': 3 }));
    await eventually(async () => JSON.parse(await get('/status/fleet')).reporters.some((r: { nodeId: string }) => r.nodeId === 'envoy-moving'), 'reporting');
    e.end();
    await e.status();
    e.close();
    await eventually(async () => !JSON.parse(await get('/status/fleet')).reporters.some((r: { nodeId: string }) => r.nodeId === 'envoy-moving'), 'forgotten');
  });

  it('does not double count two streams under one node id (the latest report wins), and says so', async () => {
    const a = envoyStream(address);
    const b = envoyStream(address);
    a.send(report('envoy-twin', { 'llama/http': 10 }));
    await eventually(async () => (await fleet()).services.llama?.activeRequests === 10, 'first twin');
    await new Promise((r) => setTimeout(r, 250)); // past the flood throttle, which is per node id
    b.send(report('envoy-twin', { 'llama/http': 30 }));
    await eventually(async () => (await fleet()).services.llama?.activeRequests === 30, 'second twin replaces');
    expect((await fleet()).services.llama.envoys).to.equal(1);
    expect(log.lines.some((l) => l.msg === 'two live metrics streams share a node id; the latest report wins')).to.equal(true);
    a.end();
    await a.status();
    a.close();
    await new Promise((r) => setTimeout(r, 100));
    expect((await fleet()).services.llama?.activeRequests, 'still reported by the open twin').to.equal(30);
    b.end();
    await b.status();
    b.close();
    await eventually(async () => (await fleet()).reporters.length === 0, 'forgotten with the last stream');
  });

  it('ends a relay stream that does not say how many Envoys it stands for', async () => {
    const r = envoyStream(address);
    r.send(report('inferplane-relay:x', { 'llama/http': 3 }));
    const e = await r.status();
    r.close();
    expect(e?.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(e?.details).to.contain('a relay report needs inferplane.relay.envoys');
  });

  for (const [what, first, details] of [
    ['a first message without a node id', report(undefined, { 'llama/http': 1 }), 'the first StreamMetricsMessage must carry identifier.node.id'],
    ['undecodable bytes', Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f]), 'cannot decode envoy.service.metrics.v3.StreamMetricsMessage'],
  ] as const) {
    it(`ends the stream on ${what} with INVALID_ARGUMENT`, async () => {
      const d = envoyStream(address);
      d.send(first);
      const e = await d.status();
      d.close();
      expect(e?.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(e?.details).to.contain(details);
    });
  }
});
