import { DiscoveryV1Api } from '@kubernetes/client-node';
import { expect } from 'chai';
import { createMemoryLogger } from '../../../src/observability/log.js';
import { createSupervisedInformer } from '../../../src/sources/kubernetes/informer.js';
import { realTimers } from '../../../src/sources/kubernetes/timers.js';
import { startApiServer, type ApiServerStandIn } from '../../support/apiserver.js';
import { eventually } from '../../support/harness.js';
import { kubeConfigFor, slice } from '../../support/kube.js';

describe('createSupervisedInformer (real client-node informer, API-server stand-in)', () => {
  let api: ApiServerStandIn;
  beforeEach(async () => {
    api = await startApiServer();
    api.apply(slice('ml', 'llama', 'a', [{ address: '10.0.0.1' }]));
  });
  afterEach(() => api.close());

  const make = (o: { maxWatchMs?: number; backoffInitialMs?: number; backoffMaxMs?: number } = {}) => {
    const kc = kubeConfigFor(api.url);
    const d = kc.makeApiClient(DiscoveryV1Api);
    const log = createMemoryLogger();
    const changes: string[] = [];
    const inf = createSupervisedInformer({
      kubeConfig: kc, path: '/apis/discovery.k8s.io/v1/endpointslices', list: () => d.listEndpointSliceForAllNamespaces({}),
      name: 'slices', log, timers: realTimers, onChange: (s) => changes.push(s.metadata!.name!), ...o,
    });
    return { inf, log, changes };
  };
  const lists = () => api.requests.filter((r) => r === 'GET /apis/discovery.k8s.io/v1/endpointslices').length;
  const watches = () => api.requests.filter((r) => r.includes('watch=true')).length;

  it('restarts a quiet watch from its resourceVersion, without relisting', async () => {
    const { inf, changes } = make({ maxWatchMs: 150 });
    inf.start();
    try {
      await eventually(() => inf.synced() && watches() >= 3, 'two watch restarts');
      expect(lists()).to.equal(1);
      const rv = /resourceVersion=(\d+)/.exec(api.requests.filter((r) => r.includes('watch=true')).pop()!)![1];
      expect(Number(rv)).to.be.greaterThan(100);
      api.apply(slice('ml', 'llama', 'b', [{ address: '10.0.0.2' }]));
      await eventually(() => changes.includes('b'), 'a change after a restart still arrives');
      expect(inf.list().map((s) => s.metadata!.name).sort()).to.deep.equal(['a', 'b']);
    } finally {
      await inf.stop();
    }
  });

  it('keeps its cache and retries with growing delays while the API server fails', async () => {
    const { inf, log } = make({ backoffInitialMs: 20, backoffMaxMs: 80 });
    inf.start();
    try {
      await eventually(() => inf.synced(), 'synced');
      api.failNext(/endpointslices/, 4, 500);
      api.dropWatches();
      await eventually(() => log.lines.filter((l) => l.msg.startsWith('informer failed')).length >= 4, 'four failures');
      expect(log.lines.filter((l) => l.msg.startsWith('informer failed')).map((l) => l.fields['retryInMs']).slice(0, 4)).to.deep.equal([20, 40, 80, 80]);
      expect(inf.list().map((s) => s.metadata!.name)).to.deep.equal(['a']);
      await eventually(() => api.openWatches() === 1, 'watching again');
    } finally {
      await inf.stop();
    }
  });
});
