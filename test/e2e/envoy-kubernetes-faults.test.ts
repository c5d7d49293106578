import { expect } from 'chai';
import { createMemoryLogger } from '../../src/observability/log.js';
import { serve, type Running } from '../../src/serve.js';
import { DEFAULT_LIMITS } from '../../src/xds/stream.js';
import { startApiServer, type ApiServerStandIn } from '../support/apiserver.js';
import { envoyVersion, startEnvoy, type RunningEnvoy } from '../support/envoy.js';
import { eventually } from '../support/harness.js';
import { kubeConfigFor, service, slice } from '../support/kube.js';
import { freePort } from '../support/processes.js';
import { completion, startSimPods, startTraffic, type SimPods } from '../support/traffic.js';

const PODS = ['127.0.0.21', '127.0.0.22', '127.0.0.23', '127.0.0.24'];
const CLUSTER = 'ml/llm/http';

describe(`faults of the Kubernetes API (stand-in API server) under traffic through real Envoy ${envoyVersion()}`, function () {
  this.timeout(120_000);
  let api: ApiServerStandIn;
  let pods: SimPods;
  let running: Running;
  let envoy: RunningEnvoy;
  let url: string;

  before(async () => {
    api = await startApiServer();
    pods = await startSimPods(PODS);
    api.apply(service('ml', 'llm', { ports: [{ name: 'http', port: 80 }] }));
    api.apply(slice('ml', 'llm', 'llm-1', PODS.slice(0, 3).map((address) => ({ address })), { ports: [{ name: 'http', port: pods.port }] }));
    const listenerPort = await freePort();
    running = await serve({
      discovery: { kind: 'kubernetes', kubeConfig: kubeConfigFor(api.url), namespaces: ['ml'], serviceSelector: 'inferplane.io/serve=true', listener: { name: 'ingress', address: '127.0.0.1', port: listenerPort }, holdOffMs: 10, maxDelayMs: 100 },
      xdsAddress: '127.0.0.1:0', adminHost: '127.0.0.1', adminPort: 0, limits: DEFAULT_LIMITS, maxMessageBytes: 1 << 20, log: createMemoryLogger(),
    });
    envoy = await startEnvoy({ bootstrap: 'front-proxy.yaml', xdsPort: running.xdsPort });
    url = `http://127.0.0.1:${listenerPort}/v1/completions`;
  });

  after(async () => {
    await envoy?.stop();
    await running?.stop(500);
    await Promise.all(pods?.sims.map((s) => s.close()) ?? []);
    await api?.close();
  });

  it('drops of watches, 500s, 410 Gone and a hanging API server: zero failed requests, never an empty endpoint set', async () => {
    const hosts = async () => {
      const body = await envoy.adminJson('/clusters?format=json');
      return ((body.cluster_statuses.find((c: any) => c.name === CLUSTER)?.host_statuses ?? []) as any[]).map((h) => h.address.socket_address.address as string).sort();
    };
    await eventually(async () => (await hosts()).length === 3, 'Envoy has the three pods', 20_000);
    let last: unknown;
    await eventually(async () => {
      const r = await completion(url, { headers: { 'x-model': 'llm' } });
      last = r;
      return r.ok;
    }, 'Envoy answers on its listener', 15_000).catch((e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(last)}`);
    });
    // Envoy's view, sampled throughout: it must never be empty.
    const seen: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        seen.push((await hosts()).length);
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    const traffic = startTraffic(url, { concurrency: 8, headers: { 'x-model': 'llm' }, maxTokens: 5, maxMs: 100_000 });
    const flowing = async (what: string) => {
      const from = traffic.result.ok;
      await eventually(() => traffic.result.ok > from + 20, `traffic flowing ${what}`, 15_000);
    };
    /** A change of the pods after each fault proves the watch came back (the informers recovered). */
    const setPods = async (n: number, after: string) => {
      api.apply(slice('ml', 'llm', 'llm-1', PODS.slice(0, n).map((address) => ({ address })), { ports: [{ name: 'http', port: pods.port }] }));
      await eventually(async () => JSON.stringify(await hosts()) === JSON.stringify(PODS.slice(0, n)), `Envoy sees ${n} pods after ${after}`, 30_000);
    };
    try {
      await flowing('at the start');
      api.dropWatches();
      await flowing('after dropped watches');
      await setPods(4, 'dropped watches');

      api.failNext(/endpointslices|services/, 3, 500);
      api.dropWatches();
      await flowing('while the API server answers 500');
      await setPods(3, '500s');

      api.compact();
      api.dropWatches();
      await flowing('after compaction');
      await setPods(4, '410 Gone');

      api.slow(4_000);
      api.dropWatches();
      await flowing('while the API server hangs');
      api.slow(0);
      await setPods(3, 'a hanging API server');
      await flowing('at the end');
    } finally {
      sampling = false;
      await sampler;
      await traffic.stop();
    }
    expect(traffic.result.failed, 'failed requests').to.deep.equal([]);
    expect(Math.min(...seen), `Envoy's host counts over time: ${[...new Set(seen)].join(',')}`).to.be.at.least(3);
  });
});
