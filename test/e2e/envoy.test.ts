import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { eventually } from '../support/harness.js';
import { envoyVersion, startEnvoy, type RunningEnvoy } from '../support/envoy.js';
import { freePort, inferplane, type Child } from '../support/processes.js';
import { completion, fileService, startTestSim, startTraffic, writeEndpointsFile, type FileEndpoint, type TestSim } from '../support/traffic.js';

const SERVICE = 'llama';
const CLUSTER = `${SERVICE}/http`;

const variants = [
  { bootstrap: 'front-proxy.yaml', protocol: 'SotW ADS', node: 'front-proxy-1' },
  { bootstrap: 'sidecar.yaml', protocol: 'Delta ADS', node: 'sidecar-1', serviceNode: 'sidecar-1', serviceCluster: 'client-app' },
] as const;

for (const variant of variants) {
  describe(`end to end: real Envoy ${envoyVersion()} (${variant.bootstrap}, ${variant.protocol}) fed by inferplane, vLLM simulators upstream`, function () {
    this.timeout(60_000);
    let dir: string;
    let file: string;
    let sims: TestSim[];
    let listenerPort: number;
    let xdsPort: number;
    let cp: Child;
    let admin: string;
    let envoy: RunningEnvoy;
    let url: string;
    /** Services beyond the main one, by name. */
    let others: object[] = [];

    const writeFile = (endpoints: readonly FileEndpoint[], settings: Record<string, unknown> = {}) =>
      writeEndpointsFile(file, { listener: { name: 'ingress', address: '127.0.0.1', port: listenerPort }, services: [fileService(SERVICE, endpoints, { settings: { retries: { attempts: 0 }, ...settings } }), ...others] });

    const startControlPlane = async () => {
      cp = inferplane(['serve', '--endpoints', file, '--xds-address', `127.0.0.1:${xdsPort}`, '--admin-address', '127.0.0.1:0', '--shutdown-grace-ms', '1000']);
      admin = `http://${(await cp.logLine('inferplane serving'))['admin']}`;
    };
    const nodes = async () => ((await (await fetch(`${admin}/status/nodes`)).json()) as { nodes: any[] }).nodes.filter((n) => n.nodeId === variant.node);
    /** Envoy's view of the cluster's hosts: port → EDS health and requests in flight. */
    const hosts = async () => {
      const body = await envoy.adminJson('/clusters?format=json');
      const c = body.cluster_statuses.find((s: any) => s.name === CLUSTER);
      return new Map<number, { health: string; active: number }>((c?.host_statuses ?? []).map((h: any) => [h.address.socket_address.port_value, {
        health: h.health_status.eds_health_status,
        active: Number(h.stats.find((s: any) => s.name === 'rq_active')?.value ?? 0),
      }]));
    };
    const rejected = async () => {
      const stats = await envoy.stats();
      return [...stats].filter(([k, v]) => /update_rejected$/.test(k) && v > 0);
    };

    before(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-envoy-e2e-'));
      file = path.join(dir, 'endpoints.yaml');
      sims = await Promise.all([0, 1, 2, 3].map(() => startTestSim()));
      [listenerPort, xdsPort] = [await freePort(), await freePort()];
      others = [];
      writeFile(sims.slice(0, 3).map((s) => ({ port: s.port, zone: 'zone-a' })));
      await startControlPlane();
      envoy = await startEnvoy({ bootstrap: variant.bootstrap, xdsPort, ...('serviceNode' in variant && { serviceNode: variant.serviceNode, serviceCluster: variant.serviceCluster }) });
      url = `http://127.0.0.1:${listenerPort}/v1/completions`;
      await eventually(async () => (await hosts()).size === 3, 'Envoy has the three endpoints', 20_000);
      await eventually(async () => (await completion(url, { headers: { 'x-model': SERVICE } })).ok, 'a completion through Envoy', 10_000);
    });

    after(async () => {
      await envoy?.stop();
      await cp?.stop('SIGKILL');
      await Promise.all(sims.map((s) => s.close()));
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('answers completions and SSE streams through its listener, spread over every simulator', async () => {
      const before = await Promise.all(sims.map((s) => s.started()));
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) => completion(url, { headers: { 'x-model': SERVICE }, stream: i % 2 === 0, maxTokens: 10 })));
      expect(results.filter((r) => !r.ok)).to.deep.equal([]);
      expect(results[0]!.ok && results[0]!.text).to.contain('data: {').and.contain('data: [DONE]');
      const after = await Promise.all(sims.map((s) => s.started()));
      for (let i = 0; i < 3; i++) expect(after[i]! - before[i]!, `simulator ${i}`).to.be.greaterThan(0);
      expect(after[3]).to.equal(before[3]);
    });

    it('runs every cluster on least_request with two choices, rejects no update, and inferplane records no NACK', async () => {
      const dump = await envoy.adminJson('/config_dump?resource=dynamic_active_clusters');
      const clusters = dump.configs.map((c: any) => c.cluster);
      expect(clusters.map((c: any) => c.name)).to.deep.equal([CLUSTER]);
      for (const c of clusters) {
        const first = c.load_balancing_policy.policies[0].typed_extension_config;
        expect(first.name).to.equal('envoy.load_balancing_policies.least_request');
        expect(first.typed_config.choice_count).to.equal(2);
      }
      expect(await rejected()).to.deep.equal([]);
      const [node] = await nodes();
      for (const [type, t] of Object.entries(node.types) as [string, any][]) {
        expect(t.lastNack, type).to.equal(undefined);
        expect(t.ackedVersion, type).to.equal(t.sentVersion);
      }
    });

    it('leaves no cluster warming after a cluster change, and rejects nothing', async () => {
      const modified = await envoy.stat('cluster_manager.cluster_modified');
      writeFile(sims.slice(0, 3).map((s) => ({ port: s.port, zone: 'zone-a' })), { connectTimeout: '3s' });
      await eventually(async () => (await envoy.stat('cluster_manager.cluster_modified')) > modified, 'Envoy took the changed cluster', 10_000);
      await eventually(async () => (await envoy.stat('cluster_manager.warming_clusters')) === 0, 'no cluster warming', 5_000);
      expect(await envoy.stat('cluster_manager.active_clusters')).to.be.greaterThan(0);
      expect(await rejected()).to.deep.equal([]);
      expect((await completion(url, { headers: { 'x-model': SERVICE } })).ok).to.equal(true);
    });

    it('sends traffic to an added endpoint; a draining one and a removed one get no new requests while their SSE streams finish', async () => {
      const [a, b, c, d] = sims as [TestSim, TestSim, TestSim, TestSim];
      writeFile([a, b, c, d].map((s) => ({ port: s.port, zone: 'zone-a' })));
      await eventually(async () => (await hosts()).size === 4, 'Envoy has the added endpoint', 10_000);
      const dBefore = await d.started();
      expect((await Promise.all(Array.from({ length: 20 }, () => completion(url, { headers: { 'x-model': SERVICE } })))).every((r) => r.ok)).to.equal(true);
      expect(await d.started()).to.be.greaterThan(dBefore);

      // Long SSE streams on every host, then c drains (terminating, still serving) and d is removed.
      const streams = Array.from({ length: 24 }, () => completion(url, { headers: { 'x-model': SERVICE }, stream: true, maxTokens: 150 }));
      await eventually(async () => (await c.inFlight()) > 0 && (await d.inFlight()) > 0, 'streams running on c and d', 5_000);
      writeFile([{ port: a.port }, { port: b.port }, { port: c.port, ready: false, serving: true, terminating: true }].map((e) => ({ ...e, zone: 'zone-a' })));
      await eventually(async () => {
        const h = await hosts();
        return h.get(c.port)?.health === 'DRAINING' && !h.has(d.port);
      }, 'Envoy sees c draining and d gone', 10_000);
      const [cTaken, dTaken] = [await c.started(), await d.started()];
      const during = await Promise.all(Array.from({ length: 20 }, () => completion(url, { headers: { 'x-model': SERVICE } })));
      expect(during.filter((r) => !r.ok)).to.deep.equal([]);
      expect(await c.started(), 'new requests on the draining endpoint').to.equal(cTaken);
      expect(await d.started(), 'new requests on the removed endpoint').to.equal(dTaken);
      const finished = await Promise.all(streams);
      expect(finished.filter((r) => !r.ok), 'streams cut').to.deep.equal([]);
      expect([await c.inFlight(), await d.inFlight()]).to.deep.equal([0, 0]);
      writeFile(sims.slice(0, 3).map((s) => ({ port: s.port, zone: 'zone-a' })));
      await eventually(async () => [...(await hosts()).values()].filter((h) => h.health === 'HEALTHY').length === 3, 'three healthy endpoints again', 10_000);
    });

    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      it(`loses no request when inferplane stops by ${signal} under steady traffic, and resyncs without churn when it returns`, async function () {
        this.timeout(120_000);
        // A second service adds an API listener and route table only proxyless clients ask for: versions must
        // still be those of what this Envoy holds.
        others = [fileService(`extra-${signal.toLowerCase()}`, [{ port: sims[3]!.port }])];
        writeFile(sims.slice(0, 3).map((s) => ({ port: s.port, zone: 'zone-a' })));
        // Settled: exactly this test's clusters active (the previous test's extra one removed), none warming.
        const extra = `extra-${signal.toLowerCase()}/http`;
        await eventually(async () => {
          const dump = await envoy.adminJson('/config_dump?resource=dynamic_active_clusters');
          const active = dump.configs.map((c: any) => c.cluster.name).sort();
          return JSON.stringify(active) === JSON.stringify([extra, CLUSTER].sort()) && (await hosts()).size === 3 && (await envoy.stat('cluster_manager.warming_clusters')) === 0;
        }, 'Envoy has exactly the extra service\'s cluster and ours', 15_000);
        await eventually(async () => (await nodes()).every((n) => Object.values(n.types).every((t: any) => t.ackedVersion === t.sentVersion)), 'Envoy ACKed everything', 10_000);
        const traffic = startTraffic(url, { concurrency: 8, headers: { 'x-model': SERVICE }, maxTokens: 5, maxMs: 100_000 });
        try {
          await eventually(() => traffic.result.ok > 20, 'traffic flowing', 10_000);
          const churn = ['cluster_manager.cluster_added', 'cluster_manager.cluster_modified', 'cluster_manager.cluster_removed', 'listener_manager.listener_added', 'listener_manager.listener_modified', 'listener_manager.listener_removed', 'cluster_manager.cds.update_success', 'listener_manager.lds.update_success', 'http.ingress.rds.ingress.update_success', `cluster.${CLUSTER}.update_success`];
          const versions = ['cluster_manager.cds.version', 'listener_manager.lds.version', 'http.ingress.rds.ingress.version', `cluster.${CLUSTER}.version`];
          const read = async (names: string[]) => {
            const stats = await envoy.stats();
            return Object.fromEntries(names.map((n) => [n, stats.get(n) ?? 0]));
          };
          const before = { churn: await read(churn), versions: await read(versions) };
          expect(await cp.stop(signal)).to.equal(signal === 'SIGTERM' ? 0 : 128);
          const okAtStop = traffic.result.ok;
          await eventually(() => traffic.result.ok > okAtStop + 20, 'traffic flowing without the control plane', 10_000);
          await startControlPlane();
          // Back in sync: every type subscribed again and nothing awaiting an answer (a flush follows each request
          // at once, so anything to send would be pending by now).
          await eventually(async () => {
            const n = await nodes();
            return n.length > 0 && n.every((x) => Object.keys(x.types).length >= 4 && Object.values(x.types).every((t: any) => t.pendingNonce === undefined));
          // Envoy's reconnect backoff grows (jittered, up to 30 s) while inferplane is away.
          }, 'Envoy reconnected and subscribed to every type', 45_000);
          const okAtReturn = traffic.result.ok;
          await eventually(() => traffic.result.ok > okAtReturn + 20, 'traffic flowing after the return', 10_000);
          const r = await traffic.stop();
          expect(r.failed, 'failed requests').to.deep.equal([]);
          expect(await read(churn), 'nothing re-applied').to.deep.equal(before.churn);
          expect(await read(versions), 'same versions').to.deep.equal(before.versions);
          const responses = await (await fetch(`${admin}/metrics`)).text();
          expect(responses.split('\n').filter((l) => l.startsWith('inferplane_xds_responses_total') && !l.endsWith(' 0')), 'responses sent after the return').to.deep.equal([]);
        } finally {
          await traffic.stop();
        }
      });
    }
  });
}
