import { expect } from 'chai';
import { envoyVersion } from '../support/envoy.js';
import { startP2cLab } from '../support/p2c.js';

/**
 * Power of two choices in the real data plane: one upstream three times slower than the rest, open-loop Poisson
 * arrivals at a rate round robin cannot hold (it sends the slow upstream more than its full batch serves) and two
 * choices can, Envoy on inferplane's least_request config against round_robin. Only the direction is asserted
 * here; `npm run bench -- --only p2c` measures the figures (BENCHMARKS.md).
 */
describe(`power of two choices in Envoy ${envoyVersion()}: least_request against round_robin with one upstream 3× slower`, function () {
  this.timeout(90_000);

  it('sends the slow upstream fewer requests, keeps in-flight counts level, and lowers the p99 and the mean', async () => {
    // Simulators 12× slower than the preset: fast ones serve ≈ 99 requests/s at a full batch, the slow one ≈ 33.
    // At 200/s round robin sends it 50/s and its queue grows; two choices can hold ≈ 330/s.
    const lab = await startP2cLab({ upstreams: 4, slowFactor: 3, slowdown: 12, concurrency: 1, maxTokens: 50 });
    try {
      const rr = await lab.run('round-robin', 6_000, { rps: 200 });
      const lr = await lab.run('least-request', 6_000, { rps: 200 });
      const show = JSON.stringify({ rr: { ...rr, latencies: undefined }, lr: { ...lr, latencies: undefined } });
      expect(rr.failed + lr.failed, show).to.equal(0);
      expect(rr.requests, show).to.be.greaterThan(800);
      expect(lr.requests, show).to.be.greaterThan(800);
      // Round robin gives every upstream a quarter; two choices starve the slow one of new work.
      expect(rr.share[0]!, show).to.be.within(0.2, 0.3);
      expect(lr.share[0]!, show).to.be.lessThan(rr.share[0]! * 0.8);
      // Round robin piles requests up on the slow upstream; two choices keep it near the others.
      const fastMean = (r: typeof rr) => r.inFlight.slice(1).reduce((a, b) => a + b, 0) / 3;
      expect(rr.inFlight[0]! / fastMean(rr), show).to.be.greaterThan(2);
      expect(lr.inFlight[0]! / fastMean(lr), show).to.be.lessThan(rr.inFlight[0]! / fastMean(rr));
      expect(lr.mean, show).to.be.lessThan(rr.mean);
      const p99 = (r: typeof rr) => r.latencies[Math.ceil(0.99 * r.latencies.length) - 1]!;
      expect(p99(lr), show).to.be.lessThan(p99(rr));
    } finally {
      await lab.stop();
    }
  });
});
