import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { envoyVersion, startEnvoy, type RunningEnvoy } from '../support/envoy.js';
import { eventually } from '../support/harness.js';
import { freePort, inferplane, type Child } from '../support/processes.js';
import { fileService, writeEndpointsFile } from '../support/traffic.js';

const SERVICES = 20;
const ENDPOINTS = 400;
/** Small enough that the EDS answer (about 200 KB) goes out in several responses. */
const MAX_RESPONSE = 65_536;

const variants = [
  { bootstrap: 'front-proxy.yaml', protocol: 'SotW ADS', node: 'front-proxy-1' },
  { bootstrap: 'sidecar.yaml', protocol: 'Delta ADS', node: 'sidecar-1', serviceNode: 'sidecar-1', serviceCluster: 'client-app' },
] as const;

for (const variant of variants) {
  describe(`an EDS answer split over several responses, taken whole by real Envoy ${envoyVersion()} (${variant.protocol})`, function () {
    this.timeout(60_000);
    let dir: string;
    let cp: Child | undefined;
    let envoy: RunningEnvoy | undefined;

    after(async () => {
      await envoy?.stop();
      await cp?.stop('SIGKILL');
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it(`has all ${SERVICES} × ${ENDPOINTS} endpoints, ACKs every part, rejects nothing, and takes a change to all of them`, async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-large-'));
      const file = path.join(dir, 'endpoints.yaml');
      const [listenerPort, xdsPort] = [await freePort(), await freePort()];
      const write = (port: number) => writeEndpointsFile(file, {
        listener: { name: 'ingress', address: '127.0.0.1', port: listenerPort },
        services: Array.from({ length: SERVICES }, (_, s) => fileService(`svc-${s}`, Array.from({ length: ENDPOINTS }, (_, e) => ({ address: `10.1.${s}.${e % 250}`, port: port + Math.floor(e / 250) })))),
      });
      write(8000);
      cp = inferplane(['serve', '--endpoints', file, '--xds-address', `127.0.0.1:${xdsPort}`, '--admin-address', '127.0.0.1:0', '--max-response-bytes', String(MAX_RESPONSE)]);
      const admin = `http://${(await cp.logLine('inferplane serving'))['admin']}`;
      envoy = await startEnvoy({ bootstrap: variant.bootstrap, xdsPort, ...('serviceNode' in variant && { serviceNode: variant.serviceNode, serviceCluster: variant.serviceCluster }) });
      const e = envoy;
      /** Per cluster, the ports of its hosts in Envoy. */
      const hostPorts = async () => {
        const body = await e.adminJson('/clusters?format=json');
        return new Map<string, number[]>(body.cluster_statuses.map((c: any) => [c.name, (c.host_statuses ?? []).map((h: any) => h.address.socket_address.port_value)]));
      };
      const allOn = async (ports: number[]) => {
        const clusters = await hostPorts();
        return Array.from({ length: SERVICES }, (_, s) => clusters.get(`svc-${s}/http`)).every((p) => p?.length === ENDPOINTS && p.every((x) => ports.includes(x)));
      };
      const edsResponses = async () => {
        const text = await (await fetch(`${admin}/metrics`)).text();
        return text.split('\n').filter((l) => l.startsWith('inferplane_xds_responses_total') && l.includes('type="eds"')).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
      };
      const inSync = async () => {
        const { nodes } = (await (await fetch(`${admin}/status/nodes`)).json()) as { nodes: any[] };
        const eds = nodes.find((n) => n.nodeId === variant.node)?.types['eds'];
        return eds !== undefined && eds.pendingNonce === undefined && eds.ackedVersion === eds.sentVersion && eds.lastNack === undefined;
      };
      const rejected = async () => [...(await e.stats())].filter(([k, v]) => /update_rejected$/.test(k) && v > 0);

      await eventually(() => allOn([8000, 8001]), `Envoy has ${SERVICES * ENDPOINTS} endpoints`, 20_000);
      await eventually(inSync, 'every EDS response ACKed', 10_000);
      const first = await edsResponses();
      expect(first, 'EDS responses for the first answer').to.be.greaterThan(2);
      expect(await rejected()).to.deep.equal([]);

      write(9000);
      await eventually(() => allOn([9000, 9001]), 'Envoy has every endpoint on its new port', 20_000);
      await eventually(inSync, 'every EDS response ACKed', 10_000);
      expect((await edsResponses()) - first, 'EDS responses for the change').to.be.greaterThan(2);
      expect(await rejected()).to.deep.equal([]);
    });
  });
}
