import { expect } from 'chai';
import { readPolicy } from '../../src/scaler/policy.js';
import { createPodScrape, createQueueReader, parseVllmWork } from '../../src/scaler/queue.js';
import { eventually } from '../support/harness.js';
import { freePort } from '../support/processes.js';
import { completion, metricsOf, startTestSim } from '../support/traffic.js';

describe('the queue signal: vLLM\'s queues read from the pods', () => {
  it('parses running and waiting requests (summed over models) and KV-cache usage (current and older name), skipping comments and garbage', () => {
    const text = [
      '# HELP vllm:num_requests_waiting Number of requests waiting.',
      'vllm:num_requests_waiting{model_name="a"} 3', 'vllm:num_requests_waiting{model_name="b"} 2',
      'vllm:num_requests_running{model_name="a"} 7', 'vllm:num_requests_running{model_name="b"} -1',
      'vllm:kv_cache_usage_perc{model_name="a"} 0.4', 'vllm:gpu_cache_usage_perc{model_name="a"} 0.6', 'vllm:num_requests_waiting{model_name="c"} NaN',
    ].join('\n');
    expect(parseVllmWork(text)).to.deep.equal({ running: 7, waiting: 5, kvCacheUsage: 0.6 });
    expect(parseVllmWork('vllm:num_requests_running 2\n')).to.deep.equal({ running: 2, waiting: 0, kvCacheUsage: null });
    expect(parseVllmWork('other_metric 1\n')).to.equal(undefined);
  });

  it('reads real simulators\' /metrics: waiting summed, the cache averaged over the pods that answered, a silent pod left out', async function () {
    this.timeout(20_000);
    const sims = await Promise.all([startTestSim({ maxNumSeqs: 2, slowdown: 64 }), startTestSim({ maxNumSeqs: 2, slowdown: 64 })]);
    const closed = await freePort();
    try {
      const pods = [...sims.map((s) => ({ address: '127.0.0.1', port: s.port })), { address: '127.0.0.1', port: closed }];
      const scrape = createPodScrape({ pods: () => pods, timeoutMs: 2_000 });
      const read = createQueueReader(scrape);
      const idle = await read('llama');
      expect(idle).to.include({ pods: 2, waiting: 0, kvCacheUsage: 0 });
      const requests = sims.flatMap((s, i) => Array.from({ length: 6 - i }, () => completion(`http://127.0.0.1:${s.port}/v1/completions`, { maxTokens: 5 })));
      await eventually(async () => (await read('llama'))?.waiting === 7, '2 running on each, 4 and 3 waiting');
      // Both pods hold two alike requests: each reports the same share of its KV cache, and so does the mean.
      const one = (await metricsOf(sims[0]!.port)).get('vllm:kv_cache_usage_perc')!;
      expect(one).to.be.above(0);
      const busy = await read('llama');
      expect(busy).to.include({ pods: 2 });
      expect(busy!.kvCacheUsage).to.be.closeTo(one, 1e-12);
      await Promise.all(requests);
      expect(await createQueueReader(createPodScrape({ pods: () => [{ address: '127.0.0.1', port: closed }] }))('llama'), 'no pod answering: no reading').to.equal(undefined);
    } finally {
      await Promise.all(sims.map((s) => s.close()));
    }
  });

  it('shares one scrape of a service between the readers of one decision (within reuseMs), and scrapes afresh after', async () => {
    let t = 0;
    const asked: string[] = [];
    const scrape = createPodScrape({ pods: (s) => (asked.push(s), []), now: () => t, reuseMs: 500 });
    const first = scrape('a');
    expect(scrape('a')).to.equal(first);
    await scrape('b');
    t = 499;
    await scrape('a');
    expect(asked).to.deep.equal(['a', 'b']);
    t = 500;
    await scrape('a');
    expect(asked).to.deep.equal(['a', 'b', 'a']);
  });

  it('takes queueSignal in the policy file, and refuses one with neither threshold', () => {
    const good = readPolicy('services:\n  ml/a: { deployment: a, queueSignal: { waitingPerPod: 8 } }\n');
    expect(good.ok && good.value[0]!.policy.queueSignal).to.deep.equal({ waitingPerPod: 8, kvCacheUsage: null });
    const off = readPolicy('services:\n  ml/a: { deployment: a }\n');
    expect(off.ok && off.value[0]!.policy.queueSignal).to.equal(null);
    const empty = readPolicy('services:\n  ml/a: { deployment: a, queueSignal: {} }\n');
    expect(!empty.ok && empty.error).to.deep.equal([{ path: ['services', 'ml/a', 'queueSignal'], message: 'give waitingPerPod, kvCacheUsage or both (or leave queueSignal out)' }]);
    const bad = readPolicy('services:\n  ml/a: { deployment: a, queueSignal: { kvCacheUsage: 1.5 } }\n');
    expect(!bad.ok && bad.error[0]!.path).to.deep.equal(['services', 'ml/a', 'queueSignal', 'kvCacheUsage']);
  });
});
