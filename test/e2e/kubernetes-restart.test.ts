import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { expect } from 'chai';
import { DEFAULT_LISTENER } from '../../src/model/model.js';
import { createMemoryLogger } from '../../src/observability/log.js';
import { serve, type Running } from '../../src/serve.js';
import { TypeUrl } from '../../src/xds/resources.js';
import { DEFAULT_LIMITS } from '../../src/xds/stream.js';
import { startApiServer, type ApiServerStandIn } from '../support/apiserver.js';
import { ECHO_SERVICE, echo, EchoClient } from '../support/echo.js';
import { eventually } from '../support/harness.js';
import { kubeConfigFor, service, slice } from '../support/kube.js';
import { RecordingXdsClient } from '../support/xds-client.js';

grpcXds.register();

/** Echo backends as pods: each on its own loopback address, all on one port (as pod IPs share a port). */
async function startPods(addresses: string[]): Promise<{ port: number; stop(): Promise<void> }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const servers: grpc.Server[] = [];
    let port = 0;
    try {
      for (const address of addresses) {
        const s = new grpc.Server();
        s.addService(ECHO_SERVICE, { Echo: (_c: unknown, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(address)) });
        servers.push(s);
        port = await new Promise<number>((resolve, reject) => s.bindAsync(`${address}:${port}`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
      }
      return { port, stop: async () => void (await Promise.all(servers.map((s) => new Promise<void>((r) => s.tryShutdown(() => r()))))) };
    } catch {
      for (const s of servers) s.forceShutdown();
    }
  }
  throw new Error('no common free port on the pod addresses');
}

describe('end to end: inferplane restarted under a grpc-js-xds client, Kubernetes discovery (API-server stand-in)', () => {
  let api: ApiServerStandIn;
  let pods: Awaited<ReturnType<typeof startPods>>;
  let running: Running | undefined;
  const log = createMemoryLogger();
  const start = (port: number) =>
    serve({
      discovery: { kind: 'kubernetes', kubeConfig: kubeConfigFor(api.url), namespaces: ['ml'], serviceSelector: 'inferplane.io/serve=true', listener: DEFAULT_LISTENER, holdOffMs: 10, maxDelayMs: 100 },
      xdsAddress: `127.0.0.1:${port}`, adminHost: '127.0.0.1', adminPort: 0, limits: DEFAULT_LIMITS, maxMessageBytes: 1 << 20, log,
    });

  before(async () => {
    api = await startApiServer();
    pods = await startPods(['127.0.0.11', '127.0.0.12', '127.0.0.13']);
    api.apply(service('ml', 'echo', { ports: [{ name: 'grpc', port: 50051, appProtocol: 'grpc' }] }));
    api.apply(slice('ml', 'echo', 'echo-1', [{ address: '127.0.0.11' }, { address: '127.0.0.12' }, { address: '127.0.0.13' }], { ports: [{ name: 'grpc', port: pods.port }] }));
  });
  after(async () => {
    await running?.stop(500);
    await pods.stop();
    await api.close();
  });

  it('loses no call, and no client ever sees an empty assignment', async function () {
    this.timeout(30_000);
    running = await start(0);
    const port = running.xdsPort;
    await eventually(() => running!.ready(), 'first inferplane ready');
    const bootstrap = { xds_servers: [{ server_uri: `127.0.0.1:${port}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }], node: { id: 'grpc-k8s', cluster: 'e2e', locality: {} } };
    // Service ml/echo is the proxyless target echo.ml.
    const client = new EchoClient('xds:///echo.ml', grpc.credentials.createInsecure(), { 'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config': JSON.stringify(bootstrap) });
    let rec: RecordingXdsClient | undefined;
    let ok = 0;
    let failures = 0;
    let lastError = '';
    const seen = new Set<string>();
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        try {
          seen.add(await echo(client));
          ok++;
        } catch (e) {
          failures++;
          lastError = (e as Error).message;
        }
      }
    })();
    try {
      await eventually(() => ok > 30, 'calls flowing');
      await running.stop(500);
      running = undefined;
      // The old process is gone: calls go on from the client's last good configuration.
      const okDown = ok;
      await eventually(() => ok > okDown + 30, 'calls flow while inferplane is down');
      running = await start(port);
      // A recording client connecting to the new process right away is answered only with complete state.
      rec = new RecordingXdsClient(`127.0.0.1:${port}`, 'sotw');
      rec.send({ node: { id: 'watcher' }, type_url: TypeUrl.Endpoint, resource_names: ['ml/echo/grpc'] });
      const first = await rec.next(() => true, 0, 10_000);
      expect(first.resources[0]!.value['endpoints'][0].lb_endpoints).to.have.length(3);
      await eventually(() => running!.xds.nodes().some((n) => n.nodeId === 'grpc-k8s' && n.types['eds']?.ackedVersion !== undefined), 'the gRPC client is back on the new inferplane', 15_000);
      const okUp = ok;
      await eventually(() => ok > okUp + 30, 'calls flow after the restart');
    } finally {
      stop = true;
      await loop;
      rec?.close();
      client.close();
    }
    expect(failures, `failed calls (last: ${lastError})`).to.equal(0);
    expect([...seen].sort()).to.deep.equal(['127.0.0.11', '127.0.0.12', '127.0.0.13']);
    expect(rec!.responses.every((r) => r.resources.every((x) => x.value['endpoints']?.length > 0))).to.equal(true);
  });
});
