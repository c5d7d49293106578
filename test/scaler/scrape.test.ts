import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { createMemoryLogger } from '../../src/observability/log.js';
import { parseEnvoyStatsJson, SCRAPE_PATH } from '../../src/scaler/scrape.js';
import { serve, type Running } from '../../src/serve.js';
import { TypeUrl } from '../../src/xds/resources.js';
import { DEFAULT_LIMITS } from '../../src/xds/stream.js';
import { eventually } from '../support/harness.js';
import { RecordingXdsClient } from '../support/xds-client.js';

/**
 * A stand-in for Envoy's admin endpoint, following its documented `/stats?format=json&filter=<regex>` answer:
 * `{"stats": [{"name": ..., "value": ...}]}`, filtered by the regex.
 */
async function envoyAdmin() {
  const gauges = new Map<string, number>();
  let mode: 'ok' | 'garbage' | 'error' = 'ok';
  const paths: string[] = [];
  const server = http.createServer((req, res) => {
    paths.push(req.url ?? '');
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/stats' || url.searchParams.get('format') !== 'json') return void res.writeHead(404).end();
    if (mode === 'error') return void res.writeHead(503).end('no');
    if (mode === 'garbage') return void res.writeHead(200).end('<html>');
    const filter = new RegExp(url.searchParams.get('filter') ?? '');
    const stats = [...gauges, ['cluster.x.upstream_rq_total', 99] as const, ['server.uptime', 5] as const].filter(([n]) => filter.test(n)).map(([name, value]) => ({ name, value }));
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ stats: [...stats, { name: 'cluster.x.upstream_rq_time', histograms: {} }] }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    gauges, paths,
    set: (m: typeof mode) => void (mode = m),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('pull mode: scraping connected Envoys\' admin /stats (stand-in Envoy admin endpoint)', () => {
  let dir: string;
  let running: Running;
  const log = createMemoryLogger();
  const fleet = async () => (await (await fetch(`http://127.0.0.1:${running.admin.port}/status/fleet`)).json()) as any;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-scrape-'));
    fs.writeFileSync(path.join(dir, 'e.yaml'), 'services:\n  - name: llama\n    endpoints: [{ address: 10.0.0.1, port: 8000 }]\n');
    running = await serve({ discovery: { kind: 'file', path: path.join(dir, 'e.yaml') }, xdsAddress: '127.0.0.1:0', adminHost: '127.0.0.1', adminPort: 0, limits: DEFAULT_LIMITS, maxMessageBytes: 1 << 20, log, scrapeIntervalMs: 50 });
  });
  after(async () => {
    await running.stop(200);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('scrapes nodes that offer inferplane.io/stats-url, counts them like pushed reports, forgets them when they leave', async () => {
    const admin = await envoyAdmin();
    admin.gauges.set('cluster.llama/http.upstream_rq_active', 7);
    const client = new RecordingXdsClient(`127.0.0.1:${running.xdsPort}`, 'sotw');
    try {
      client.send({ node: { id: 'envoy-pull', cluster: 'edge', metadata: { fields: { 'inferplane.io/stats-url': { stringValue: admin.url } } } }, type_url: TypeUrl.Cluster });
      await eventually(async () => (await fleet()).services.llama?.activeRequests === 7, 'the scraped gauge counts');
      expect(admin.paths[0]).to.equal(SCRAPE_PATH);
      const nodes = (await (await fetch(`http://127.0.0.1:${running.admin.port}/status/nodes`)).json()) as any;
      expect(nodes.nodes[0].statsUrl).to.equal(admin.url);
      admin.gauges.set('cluster.llama/http.upstream_rq_active', 12);
      await eventually(async () => (await fleet()).services.llama?.activeRequests === 12, 'follows the gauge');
      // A failing admin endpoint is logged once, not every round; its last sample stands until it expires.
      admin.set('garbage');
      await eventually(() => log.lines.some((l) => l.msg === 'cannot scrape Envoy stats'), 'the failure is logged');
      await new Promise((r) => setTimeout(r, 300));
      expect(log.lines.filter((l) => l.msg === 'cannot scrape Envoy stats')).to.have.length(1);
      expect(JSON.stringify(log.lines.find((l) => l.msg === 'cannot scrape Envoy stats')!.fields)).to.contain('the body is not JSON');
      expect((await fleet()).services.llama.activeRequests).to.equal(12);
      admin.set('ok');
      await eventually(() => log.lines.some((l) => l.msg === 'scraping Envoy stats works again'), 'recovery is logged');
      client.close();
      await eventually(async () => (await fleet()).reporters.length === 0, 'forgotten once disconnected');
      expect(await (await fetch(`http://127.0.0.1:${running.admin.port}/metrics`)).text()).to.match(/inferplane_stats_scrapes_total\{outcome="failed"\} [1-9]/);
    } finally {
      client.close();
      await admin.close();
    }
  });

  it('reads Envoy\'s JSON stats, refusing other shapes with a reason', () => {
    expect(parseEnvoyStatsJson('{"stats":[{"name":"cluster.a/http.upstream_rq_active","value":3},{"name":"h","histograms":{}}]}')).to.deep.equal([{ name: 'cluster.a/http.upstream_rq_active', labels: {}, value: 3 }]);
    expect(() => parseEnvoyStatsJson('nope')).to.throw('the body is not JSON');
    expect(() => parseEnvoyStatsJson('{"a":1}')).to.throw('the body has no "stats" array');
  });
});
