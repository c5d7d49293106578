import { expect } from 'chai';
import { envoyVersion } from '../support/envoy.js';
import { startP2cLab } from '../support/p2c.js';

/**
 * Power of two choices in the real data plane: one upstream three times slower than the rest, fixed concurrency,
 * Envoy on inferplane's least_request config against round_robin. Only the direction is asserted here;
 * `npm run bench -- --only p2c` measures the figures (BENCHMARKS.md).
 */
describe(`power of two choices in Envoy ${envoyVersion()}: least_request against round_robin with one upstream 3× slower`, function () {
  this.timeout(90_000);

  it('sends the slow upstream fewer requests, keeps in-flight counts level, and lowers mean latency', async () => {
    const lab = await startP2cLab({ upstreams: 4, slowFactor: 3, concurrency: 24, maxTokens: 20 });
    try {
      const rr = await lab.run('round-robin', 4_000);
      const lr = await lab.run('least-request', 4_000);
      const show = JSON.stringify({ rr: { ...rr, latencies: undefined }, lr: { ...lr, latencies: undefined } });
      expect(rr.failed + lr.failed, show).to.equal(0);
      expect(rr.requests, show).to.be.greaterThan(100);
      expect(lr.requests, show).to.be.greaterThan(100);
      // Round robin gives every upstream a quarter; two choices starve the slow one of new work.
      expect(rr.share[0]!, show).to.be.within(0.2, 0.3);
      expect(lr.share[0]!, show).to.be.lessThan(rr.share[0]! * 0.8);
      // Round robin piles requests up on the slow upstream; two choices keep it near the others.
      const fastMean = (r: typeof rr) => r.inFlight.slice(1).reduce((a, b) => a + b, 0) / 3;
      expect(rr.inFlight[0]! / fastMean(rr), show).to.be.greaterThan(2);
      expect(lr.inFlight[0]! / fastMean(lr), show).to.be.lessThan(rr.inFlight[0]! / fastMean(rr));
      expect(lr.mean, show).to.be.lessThan(rr.mean);
    } finally {
      await lab.stop();
    }
  });
});
