import { expect } from 'chai';
import { DEFAULT_WEIGHT_OPTIONS, nextWeights, NO_WEIGHTS, type WeightState } from '../../src/balance/weights.js';

/** Runs `n` updates with the loads `load(pod, i)` gives; returns every state. */
function run(pods: readonly string[], n: number, load: (pod: string, i: number) => number | null, from: WeightState = NO_WEIGHTS): WeightState[] {
  const out: WeightState[] = [];
  let s = from;
  for (let i = 0; i < n; i++) out.push((s = nextWeights(s, new Map(pods.map((p) => [p, load(p, i)])))));
  return out;
}
const PODS = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
const M = DEFAULT_WEIGHT_OPTIONS.mean;
const grid = (w: number) => Math.abs(Math.log(w / M) / Math.log(1.1) - Math.round(Math.log(w / M) / Math.log(1.1))) < 0.06;

describe('load-aware weights (pure)', () => {
  it('keeps equal pods at one weight whatever their second-to-second noise, so Envoy keeps two choices', () => {
    let seed = 7;
    const noise = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 0.4; // ±20%
    const states = run(PODS, 300, () => 60 * (1 + noise()));
    for (const s of states) expect([...s.weights.values()]).to.deep.equal(PODS.map(() => M));
  });

  it('sends a pod with three times the mean load less within one update, settles it, and never starves it', () => {
    const states = run(PODS, 60, (p) => (p === 'h' ? 180 : 60));
    expect(states[0]!.weights.get('h')).to.be.below(M);
    expect(states[0]!.why.get('h')).to.match(/above, sent less/);
    const last = states[59]!;
    expect(last.weights.get('h')).to.be.at.least(DEFAULT_WEIGHT_OPTIONS.mean / DEFAULT_WEIGHT_OPTIONS.spread);
    for (const p of PODS.slice(0, 7)) expect(last.weights.get(p), p).to.equal(M);
  });

  it('raises a light pod by at most 10% per update (no herd), and brings a recovered pod back to the others\' weight', () => {
    const down = run(PODS, 10, (p) => (p === 'h' ? 300 : 60));
    const low = down[9]!.weights.get('h')!;
    expect(low).to.be.below(M / 2);
    // The pod recovers and looks idle: its weight climbs a step at a time, back to exactly 100.
    const up = run(PODS, 60, (p) => (p === 'h' ? 0 : 60), down[9]!);
    let prev = low;
    for (const s of up) {
      const w = s.weights.get('h')!;
      expect(w / prev, 'one update').to.be.at.most(1.1 * 1.01);
      prev = w;
    }
    expect(up[59]!.weights.get('h')).to.equal(M);
    expect([...up[59]!.weights.values()]).to.deep.equal(PODS.map(() => M));
  });

  it('treats a pod whose load is unknown (null, NaN, negative, infinite) as average: its weight goes to the mean', () => {
    const down = run(PODS, 10, (p) => (p === 'h' ? 300 : 60));
    for (const bad of [null, NaN, -1, Infinity]) {
      const s = run(PODS, 30, (p) => (p === 'h' ? bad : 60), down[9]!);
      expect(s[29]!.weights.get('h'), String(bad)).to.equal(M);
      expect(s[0]!.why.get('h')).to.contain('unknown');
    }
  });

  it('keeps every weight on the 10% grid, within mean / 10 … mean, with the heaviest at the mean', () => {
    const states = run(PODS, 120, (p, i) => (p === 'a' ? 5000 : p === 'b' ? 0 : 40 + ((i * 7 + p.charCodeAt(0)) % 30)));
    for (const s of states) {
      const ws = [...s.weights.values()];
      for (const w of ws) {
        expect(w).to.be.within(M / 10, M);
        expect(grid(w), `${w} on the grid`).to.equal(true);
      }
      expect(Math.max(...ws)).to.equal(M);
    }
  });

  it('starts new pods at the mean weight and forgets pods that left', () => {
    const s1 = nextWeights(NO_WEIGHTS, new Map([['a', 10], ['b', 10]]));
    const s2 = nextWeights(s1, new Map([['b', 10], ['c', 10]]));
    expect([...s2.weights.keys()]).to.deep.equal(['b', 'c']);
    expect(s2.weights.get('c')).to.equal(M);
  });
});
