import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { adminFetcher, explainDecision, renderStatus, StatusError, syncCell } from '../../src/cli/status.js';
import { createMemoryLogger } from '../../src/observability/log.js';
import { serve, type Running } from '../../src/serve.js';
import { TypeUrl } from '../../src/xds/resources.js';
import { DEFAULT_LIMITS } from '../../src/xds/stream.js';
import { eventually } from '../support/harness.js';
import { freePort, ROOT } from '../support/processes.js';
import { RecordingXdsClient } from '../support/xds-client.js';

describe('inferplane status, against a running serve (dry-run scaler on files)', () => {
  let running: Running;
  let admin: string;
  const clients: RecordingXdsClient[] = [];
  before(async () => {
    running = await serve({
      discovery: { kind: 'file', path: path.join(ROOT, 'examples/endpoints.yaml') }, xdsAddress: '127.0.0.1:0', adminHost: '127.0.0.1', adminPort: 0,
      limits: DEFAULT_LIMITS, maxMessageBytes: 1 << 20, log: createMemoryLogger(),
      scaler: { policy: { kind: 'file', path: path.join(ROOT, 'examples/compose-scaling-policy.yaml') }, dryRun: true, intervalMs: 50 },
    });
    admin = `http://127.0.0.1:${running.admin.port}`;
  });
  after(async () => {
    for (const c of clients) c.close();
    await running.stop(500);
  });

  it('shows each stream\'s sync per type like proxy-status, out-of-sync rows first, with the NACK message', async () => {
    const good = new RecordingXdsClient(`127.0.0.1:${running.xdsPort}`, 'sotw');
    const bad = new RecordingXdsClient(`127.0.0.1:${running.xdsPort}`, 'sotw');
    clients.push(good, bad);
    good.send({ node: { id: 'envoy-good', cluster: 'edge' }, type_url: TypeUrl.Cluster });
    const c = await good.next((r) => r.typeUrl === TypeUrl.Cluster);
    good.send({ type_url: TypeUrl.Cluster, version_info: c.versionInfo, response_nonce: c.nonce });
    bad.send({ node: { id: 'envoy-bad', cluster: 'edge' }, type_url: TypeUrl.Listener });
    const l = await bad.next((r) => r.typeUrl === TypeUrl.Listener);
    bad.send({ type_url: TypeUrl.Listener, version_info: '', response_nonce: l.nonce, error_detail: { code: 3, message: 'unknown filter' } });
    await eventually(async () => (await renderStatus({ kind: 'nodes' }, adminFetcher(admin), false)).includes('NACKED'), 'the NACK shows');
    const text = await renderStatus({ kind: 'nodes' }, adminFetcher(admin), false);
    const lines = text.split('\n');
    expect(lines[0]).to.match(/^NODE\s+CLUSTER\s+STREAM\s+CDS\s+LDS\s+EDS\s+RDS\s+AGENT\s+CONNECTED$/);
    expect(lines[1]).to.match(/^envoy-bad\s+edge\s+ads\/sotw\s+-\s+NACKED\s+-\s+-/);
    expect(lines[2]).to.match(/^envoy-good\s+edge\s+ads\/sotw\s+SYNCED\s+-\s+-\s+-/);
    expect(text).to.contain('2 streams, 1 not in sync').and.contain('NACK envoy-bad LDS: unknown filter');
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    expect(metrics).to.match(/^inferplane_build_info\{node="v\d+\.\d+\.\d+",version="\d+\.\d+\.\d+"\} 1$/m);
    expect(metrics).to.contain('inferplane_xds_streams_by_sync_state{state="nacked",type="lds"} 1').and.contain('inferplane_xds_streams_by_sync_state{state="synced",type="cds"} 1');
    const json = JSON.parse(await renderStatus({ kind: 'nodes' }, adminFetcher(admin), true));
    expect(json.nodes.map((n: any) => n.nodeId).sort()).to.deep.equal(['envoy-bad', 'envoy-good']);
  });

  it('lists services and the scaler, and explains a service\'s last decision in words', async () => {
    expect(await renderStatus({ kind: 'services' }, adminFetcher(admin), false)).to.match(/^SERVICE\s+IN FLIGHT\s+ENVOYS REPORTING\s+OLDEST REPORT\nllama-70b\s+-\s+0\s+no reports\nllama-8b\s+-\s+0\s+no reports$/);
    await eventually(async () => (await renderStatus({ kind: 'scaler' }, adminFetcher(admin), false)).includes('no-data'), 'a decision');
    const scaler = await renderStatus({ kind: 'scaler' }, adminFetcher(admin), false);
    expect(scaler).to.contain('role single (dry run: decides, never writes)').and.match(/llama-8b\s+default\/llama-8b\s+3\s+3\s+hold → 3\s+no-data\s+normal/);
    expect(await renderStatus({ kind: 'explain', service: 'llama-8b' }, adminFetcher(admin), false)).to.equal('llama-8b (normal mode): holds at 3 replicas: no Envoy has reported its in-flight requests for this service yet, and the scaler never acts on missing data.');
    const unknown = await renderStatus({ kind: 'explain', service: 'nope' }, adminFetcher(admin), false).catch((e) => e);
    expect(unknown).to.be.instanceOf(StatusError);
    expect((unknown as Error).message).to.equal('no service "nope" under the scaler or with load-aware weights (they know: llama-8b)');
  });
});

describe('inferplane status, when the admin endpoint is not what it should be', () => {
  it('says it cannot reach a closed port, naming the URL', async () => {
    const port = await freePort();
    const e = await renderStatus({ kind: 'nodes' }, adminFetcher(`http://127.0.0.1:${port}`), false).catch((x) => x);
    expect(e).to.be.instanceOf(StatusError);
    expect((e as Error).message).to.equal(`cannot reach inferplane's admin endpoint at http://127.0.0.1:${port} (ECONNREFUSED); is "inferplane serve" running there? (--admin URL)`);
  });

  it('says when the answer is not an inferplane admin endpoint, or the scaler is not running there', async () => {
    const server = http.createServer((req, res) => {
      if (req.url === '/status/nodes') return void res.end('{"hello": 1}');
      if (req.url?.startsWith('/status/scaler')) return void res.writeHead(404).end('{"error": "the scaler is not running in this process"}');
      res.end('<html>');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const messages = await Promise.all([
        renderStatus({ kind: 'nodes' }, adminFetcher(base), false).catch((e: Error) => e.message),
        renderStatus({ kind: 'scaler' }, adminFetcher(base), false).catch((e: Error) => e.message),
        renderStatus({ kind: 'services' }, adminFetcher(base), false).catch((e: Error) => e.message),
      ]);
      expect(messages).to.deep.equal([
        '/status/nodes has no "nodes": not an inferplane admin endpoint, or one of another version',
        `the scaler is not running in the process at ${base} (start it with "inferplane serve --scaler")`,
        `GET ${base}/status/fleet answered 200 with something that is not JSON: not an inferplane admin endpoint?`,
      ]);
    } finally {
      server.close();
    }
  });

  it('names every sync state and explains each reason the scaler gives', () => {
    expect([undefined, {}, { sentVersion: 'a', pendingNonce: '1' }, { sentVersion: 'a', ackedVersion: 'a' }, { sentVersion: 'b', ackedVersion: 'a', lastNack: { version: 'b' } }, { sentVersion: 'b', ackedVersion: 'a' }].map(syncCell))
      .to.deep.equal(['-', 'NOT SENT', 'PENDING', 'SYNCED', 'NACKED', 'STALE']);
    const inputs = { desired: 4, ready: 4, stableDemand: 30.5, panicDemand: 31, targetPerPod: 5, wanted: 7, envoys: 3, latestAgeMs: 12_000 };
    expect(explainDecision('ml/a', { action: 'scale-up', replicas: 7, reason: 'scale-up', mode: 'normal', inputs }))
      .to.equal('ml/a (normal mode): scales up from 4 to 7 replicas: demand 30.5 requests in flight (panic window 31), 5 per pod wanted: 7 pods.');
    expect(explainDecision('ml/a', { action: 'hold', replicas: 4, reason: 'stale-data', mode: 'normal', inputs })).to.contain('the newest stats report is 12 s old');
    for (const reason of ['no-data', 'stale-data', 'partial-data', 'below-min', 'above-max', 'scale-up', 'panic-scale-up', 'capacity-on-the-way', 'within-tolerance', 'panic-no-scale-down', 'scale-down-stabilizing', 'scale-down', 'at-max', 'at-min', 'external-change', 'fewer-reporters']) {
      expect(explainDecision('s', { action: 'hold', replicas: 1, reason, mode: 'normal', inputs }), reason).not.to.match(new RegExp(`: ${reason}\\.$`));
    }
  });
});

describe('inferplane status scaler, with a shadow policy', () => {
  it('shows what the shadow policy would do beside each service\'s last decision', async () => {
    const at = new Date().toISOString();
    const body = {
      role: 'single', dryRun: false, policy: { source: 'file:policy.yaml', version: 'abc', rejected: null }, shadowPolicy: { source: 'file:candidate.yaml', version: 'def' },
      services: { 'ml/a': { deployment: 'ml/a', current: 4, ready: 4, last: { action: 'hold', replicas: 4, reason: 'within-tolerance', mode: 'normal', at }, shadow: { action: 'scale-up', replicas: 11, reason: 'scale-up', mode: 'normal', at } } },
    };
    const text = await renderStatus({ kind: 'scaler' }, async () => body, false);
    expect(text).to.contain('shadow policy file:candidate.yaml version def (decides beside the active one, never applied)');
    expect(text).to.match(/SHADOW \(NOT APPLIED\)$/m);
    expect(text).to.match(/^ml\/a\s+ml\/a\s+4\s+4\s+hold → 4\s+within-tolerance\s+normal\s+\d+s\s+scale-up → 11 \(scale-up\)$/m);
  });
});
