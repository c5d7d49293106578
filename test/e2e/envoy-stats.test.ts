import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { STATS_URL_METADATA } from '../../src/xds/cache.js';
import { envoyVersion, startEnvoy, type RunningEnvoy } from '../support/envoy.js';
import { eventually } from '../support/harness.js';
import { freePort, inferplane, type Child } from '../support/processes.js';
import { completion, fileService, startTestSim, writeEndpointsFile, type TestSim } from '../support/traffic.js';

// A dot in the name: Envoy's tag extraction cuts cluster names there.
const SERVICE = 'llama-3.1';
const CLUSTER = `${SERVICE}/http`;
const STREAMS = 12;

/** How each Envoy gets its stats to inferplane: the metrics service sink in its three forms, or admin scraping. */
const modes: { what: string; edit: (d: any, adminPort: number) => void }[] = [
  { what: 'metrics service, default stat names', edit: () => undefined },
  { what: 'metrics service, emit_tags_as_labels', edit: (d) => (d.stats_sinks[0].typed_config.emit_tags_as_labels = true) },
  {
    what: 'metrics service, emit_tags_as_labels and batch_size 20 (one flush, several messages)',
    edit: (d) => Object.assign(d.stats_sinks[0].typed_config, { emit_tags_as_labels: true, batch_size: 20 }),
  },
  {
    what: `admin scraping (no sink; node metadata ${STATS_URL_METADATA})`,
    edit: (d, adminPort) => {
      delete d.stats_sinks;
      d.admin.address.socket_address.port_value = adminPort;
      d.node.metadata = { [STATS_URL_METADATA]: `http://127.0.0.1:${adminPort}` };
    },
  },
];

describe(`Envoy ${envoyVersion()}'s own stats feed the fleet total: under load it equals what Envoy's /stats says`, function () {
  this.timeout(60_000);
  let dir: string;
  let sims: TestSim[];
  let cp: Child;
  let admin: string;
  let xdsPort: number;
  let listenerPort: number;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-envoy-stats-'));
    const file = path.join(dir, 'endpoints.yaml');
    sims = await Promise.all([0, 1, 2].map(() => startTestSim()));
    [xdsPort, listenerPort] = [await freePort(), await freePort()];
    writeEndpointsFile(file, { listener: { name: 'ingress', address: '127.0.0.1', port: listenerPort }, services: [fileService(SERVICE, sims.map((s) => ({ port: s.port })))] });
    cp = inferplane(['serve', '--endpoints', file, '--xds-address', `127.0.0.1:${xdsPort}`, '--admin-address', '127.0.0.1:0', '--scrape-interval-ms', '500']);
    admin = `http://${(await cp.logLine('inferplane serving'))['admin']}`;
  });

  after(async () => {
    await cp?.stop('SIGKILL');
    await Promise.all(sims.map((s) => s.close()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const [i, mode] of modes.entries()) {
    it(mode.what, async () => {
      const node = `stats-envoy-${i}`;
      const adminPort = await freePort();
      let envoy: RunningEnvoy | undefined;
      try {
        envoy = await startEnvoy({ bootstrap: 'front-proxy.yaml', xdsPort, edit: (d) => {
          d.node.id = node;
          mode.edit(d, adminPort);
        } });
        const url = `http://127.0.0.1:${listenerPort}/v1/completions`;
        await eventually(async () => (await completion(url, { headers: { 'x-model': SERVICE } })).ok, 'a completion through Envoy', 15_000);
        // Long token streams hold a steady number of requests in flight.
        const streams = Array.from({ length: STREAMS }, () => completion(url, { headers: { 'x-model': SERVICE }, stream: true, maxTokens: 300 }));
        const own = () => envoy!.stat(`cluster.${CLUSTER}.upstream_rq_active`);
        await eventually(async () => (await own()) === STREAMS, `Envoy's own upstream_rq_active reaches ${STREAMS}`, 10_000);
        let fleet: any;
        await eventually(async () => {
          fleet = await (await fetch(`${admin}/status/fleet`)).json();
          return fleet.services[SERVICE]?.activeRequests === STREAMS;
        }, `inferplane's fleet total reaches ${STREAMS}`, 10_000).catch((e: Error) => {
          throw new Error(`${e.message}; /status/fleet: ${JSON.stringify(fleet)}`);
        });
        expect(await own()).to.equal(STREAMS);
        expect(fleet.services[SERVICE]).to.include({ activeRequests: STREAMS, envoys: 1 });
        expect(fleet.reporters.map((r: { nodeId: string }) => r.nodeId)).to.deep.equal([node]);
        const metrics = await (await fetch(`${admin}/metrics`)).text();
        expect(metrics).to.contain(`inferplane_fleet_active_requests{service="${SERVICE}"} ${STREAMS}`);
        expect((await Promise.all(streams)).filter((r) => !r.ok)).to.deep.equal([]);
      } finally {
        await envoy?.stop();
      }
      // The Envoy is gone: inferplane forgets it rather than counting its last report.
      await eventually(async () => ((await (await fetch(`${admin}/status/fleet`)).json()) as any).reporters.length === 0, 'the stopped Envoy is forgotten', 10_000);
    });
  }

  it('never lets a reporter go silent: refused and dropped reports are counted', async () => {
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    expect(metrics).to.match(/inferplane_stats_reports_total\{outcome="recorded"\} [1-9]/);
    expect(metrics).to.match(/inferplane_stats_scrapes_total\{outcome="recorded"\} [1-9]/);
    expect(metrics).to.contain('inferplane_stats_reports_total{outcome="too-large"} 0');
    expect(metrics).to.contain('inferplane_stats_reports_total{outcome="invalid"} 0');
  });
});
