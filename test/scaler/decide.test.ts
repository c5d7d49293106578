import { expect } from 'chai';
import { decide, DEFAULT_POLICY, type Decision, type DecisionState, type FleetSample, type ScalingPolicy } from '../../src/scaler/decide.js';

const T = DEFAULT_POLICY.modes.normal.targetPerPod; // 98 in flight per pod

interface Run {
  decisions: Decision[];
  at(t: number): Decision;
  /** Times (s) at which spec.replicas changed. */
  changes: number[];
}

/**
 * Drives decide() once a second for `seconds`, as the scaler would: `load(t)` is the fleet's active requests
 * at second t (null: no sample that second); asked-for pods become ready after `loadSeconds`.
 */
function simulate(o: { seconds: number; load: (t: number) => number | null; start: number; loadSeconds?: number; policy?: Partial<ScalingPolicy>; envoys?: number | ((t: number) => number) }): Run {
  const policy = { ...DEFAULT_POLICY, ...o.policy };
  const history: FleetSample[] = [];
  let desired = o.start;
  const readyAt: number[] = Array(o.start).fill(-Infinity);
  let state: DecisionState | undefined;
  const decisions: Decision[] = [];
  const changes: number[] = [];
  for (let t = 0; t < o.seconds; t++) {
    const now = t * 1000;
    const load = o.load(t);
    if (load !== null) history.push({ at: now, activeRequests: load, envoys: typeof o.envoys === 'function' ? o.envoys(t) : o.envoys ?? 100 });
    const ready = readyAt.slice(0, desired).filter((r) => r <= now).length;
    const d = decide({ history: history.filter((s) => s.at > now - policy.stableWindowMs), replicas: { desired, ready }, policy, now, ...(state && { state }) });
    state = d.state;
    decisions.push(d);
    if (d.replicas !== desired) {
      changes.push(t);
      for (let i = desired; i < d.replicas; i++) readyAt[i] = now + (o.loadSeconds ?? 0) * 1000;
      desired = d.replicas;
    }
  }
  return { decisions, at: (t) => decisions[t]!, changes };
}

describe('decide (pure scaling decision)', () => {
  it('step up: a jump to 2.5× the load is answered as the 6 s panic window sees it, never overshooting', () => {
    const r = simulate({ seconds: 120, start: 4, load: (t) => (t < 5 ? 4 * T : 10 * T) });
    expect(r.at(4)).to.include({ replicas: 4, action: 'hold' });
    expect(r.at(5)).to.include({ action: 'scale-up', reason: 'scale-up' });
    expect(r.at(10).replicas).to.equal(10); // within 5 s of the step
    expect(Math.max(...r.decisions.map((d) => d.replicas))).to.equal(10);
    expect(r.at(119).replicas).to.equal(10);
  });

  it('step up by more than the step bound: +100% (or 4 pods) per decision in normal mode', () => {
    const r = simulate({ seconds: 10, start: 2, load: (t) => (t < 1 ? 2 * T : 60 * T), policy: { modeThresholds: { surge: 1e9, emergency: 1e9 } } });
    expect(r.at(1).replicas).to.equal(6); // max(4 pods, 100% of 2)
    expect(r.at(2).replicas).to.equal(12);
  });

  it('spike: scales up at once, holds through the spike and its aftermath, then steps down slowly', () => {
    const r = simulate({ seconds: 900, start: 4, load: (t) => (t >= 10 && t < 20 ? 12 * T : 4 * T) });
    expect(r.at(16).replicas).to.equal(12);
    const peak = r.at(25).replicas;
    // No scale-down for the full window after the last high recommendation.
    for (let t = 20; t < 20 + DEFAULT_POLICY.scaleDownWindowMs / 1000; t++) expect(r.at(t).replicas, `t=${t}`).to.equal(peak);
    expect(r.at(70).reason).to.equal('scale-down-stabilizing');
    // Then down by at most 10% a step, to the demand.
    const downs = r.decisions.filter((d) => d.action === 'scale-down');
    expect(downs.length).to.be.greaterThan(1);
    for (const d of downs) expect(d.replicas).to.be.at.least(Math.floor(d.inputs.desired * 0.9));
    expect(r.at(899).replicas).to.equal(4);
  });

  it('a burst met by panic while pods load: once the backlog is served, the fleet goes to what the burst needs', () => {
    // The rate doubles at t=200 and stays doubled. Until the new pods are ready (60 s), the requests queued at
    // the 4 ready pods count as in flight: 20 pods' worth, then the steady 8 once the queue is served.
    const r = simulate({ seconds: 700, start: 4, loadSeconds: 60, load: (t) => (t < 200 ? 4 * T : t < 265 ? 20 * T : 8 * T) });
    const peak = Math.max(...r.decisions.map((d) => d.replicas));
    expect(peak).to.be.above(16);
    expect(r.at(230)).to.include({ panic: true });
    // Panic holds every pod for a stable window after it; then the panic's asks no longer count, and the fleet
    // steps down to the burst's 8 pods (plus tolerance) within seconds, not a whole window later.
    for (let t = 230; t < 300; t++) expect(r.at(t).replicas, `t=${t}`).to.equal(peak);
    expect(r.at(330).replicas).to.be.at.most(9);
    expect(r.at(699).replicas).to.equal(8);
  });

  it('a train of spikes: after the second panic within the window, the fleet holds between spikes', () => {
    const spike = (t: number) => t >= 200 && t % 150 < 10;
    const r = simulate({ seconds: 1200, start: 4, loadSeconds: 60, load: (t) => (spike(t) ? 40 * T : 4 * T) });
    // The first spike's pods go once its panic is over; the second shows the spikes recur, and from then on
    // the panics' asks count for the window, so the pods stay for the next spike.
    const first = r.changes.filter((t) => t < 450 && r.at(t).action === 'scale-down');
    expect(first).to.not.be.empty;
    expect(r.at(449).replicas).to.equal(4);
    // From the second spike on, every spike finds its pods ready (40 pods' worth at a 40-pod fleet's target).
    for (let t = 520; t < 1200; t++) expect(r.at(t).replicas, `t=${t}`).to.be.at.least(40);
    expect(r.decisions.slice(600).every((d) => !d.panic)).to.equal(true);
  });

  it('slow ramp: follows demand up without ever stepping down', () => {
    const r = simulate({ seconds: 600, start: 2, load: (t) => (2 + (18 * t) / 600) * T });
    for (let t = 1; t < 600; t++) expect(r.at(t).replicas, `t=${t}`).to.be.at.least(r.at(t - 1).replicas);
    expect(r.at(599).replicas).to.be.within(16, 20);
    expect(r.decisions.every((d) => d.reason !== 'panic-scale-up')).to.equal(true);
  });

  it('sawtooth: ±8% around a steady load never flaps', () => {
    // With a tolerance wider than the swing, nothing moves at all.
    const wide = simulate({ seconds: 900, start: 10, policy: { tolerance: 0.1 }, load: (t) => 10 * T * (1 + 0.08 * (((t % 30) / 15) - 1)) });
    expect(wide.changes).to.deep.equal([]);
    expect(new Set(wide.decisions.map((d) => d.reason))).to.deep.equal(new Set(['within-tolerance']));
    // The default's narrower band takes one step up for the peaks, then holds: never back down and up again.
    const r = simulate({ seconds: 900, start: 10, load: (t) => 10 * T * (1 + 0.08 * (((t % 30) / 15) - 1)) });
    expect(r.changes.length).to.be.at.most(1);
    expect(r.at(899).replicas).to.equal(11);
  });

  it('scale-down has its own tolerance: a lasting 4% fall sheds pods, a 4% rise adds them, a 2% rise does not', () => {
    const fall = simulate({ seconds: 400, start: 50, load: (t) => (t < 10 ? 50 : 48) * T });
    expect(fall.at(399).replicas).to.equal(48);
    expect(simulate({ seconds: 400, start: 50, policy: { scaleDownTolerance: 0.1 }, load: (t) => (t < 10 ? 50 : 48) * T }).changes).to.deep.equal([]);
    expect(simulate({ seconds: 400, start: 50, load: (t) => (t < 10 ? 50 : 52) * T }).at(399).replicas).to.equal(52);
    expect(simulate({ seconds: 400, start: 50, load: (t) => (t < 10 ? 50 : 51) * T }).changes).to.deep.equal([]);
  });

  it('stale data: when samples stop, it holds and says why, however idle the last sample looked', () => {
    const r = simulate({ seconds: 900, start: 10, load: (t) => (t < 30 ? 0 : null) });
    expect(r.at(45)).to.include({ replicas: 10, reason: 'stale-data', action: 'hold' });
    expect(r.at(899)).to.include({ replicas: 10, action: 'hold' });
    expect(r.decisions.every((d) => d.replicas === 10)).to.equal(true);
  });

  it('half the Envoys going silent is not idleness: no scale-down while fewer report than did in the window', () => {
    // The load is unchanged, but half the reporters vanish at t=60 s (say, a partition): the total halves.
    const r = simulate({ seconds: 900, start: 10, envoys: (t) => (t < 60 ? 100 : 50), load: (t) => (t < 60 ? 10 * T : 5 * T) });
    for (let t = 60; t < 60 + DEFAULT_POLICY.scaleDownWindowMs / 1000; t++) expect(r.at(t).replicas, `t=${t}`).to.equal(10);
    expect(r.at(200).reason).to.equal('fewer-reporters');
    // Once a whole window has seen only the 50, the lower total is the evidence: down it goes, slowly.
    expect(r.at(899).replicas).to.be.below(10);
    // Envoys joining never hold anything back.
    const up = simulate({ seconds: 30, start: 5, envoys: (t) => (t < 10 ? 50 : 100), load: (t) => (t < 10 ? 5 * T : 10 * T) });
    expect(up.at(29).replicas).to.equal(10);
  });

  it('after a stats outage, Envoys reconnecting one at a time are a partial fleet: no scale-down until a whole window has seen them back', () => {
    // 3 Envoys carry 8 pods' load; stats stop for 6 minutes (longer than the scale-down window), then the
    // Envoys reconnect one every 30 s, each bringing its third of the load back into the total.
    const out = (t: number) => t >= 100 && t < 460;
    const back = (t: number) => (t < 100 ? 3 : Math.min(3, 1 + Math.floor((t - 460) / 30)));
    const r = simulate({ seconds: 1000, start: 8, envoys: back, load: (t) => (out(t) ? null : (8 * T * back(t)) / 3) });
    expect(r.at(300).reason).to.equal('no-data');
    for (let t = 460; t < 460 + 300; t++) expect(r.at(t).replicas, `t=${t}: ${r.at(t).reason}`).to.equal(8);
    expect(r.at(470).reason).to.equal('scale-down-stabilizing');
    // The whole fleet back, the same load: nothing to do, ever.
    expect(r.changes).to.deep.equal([]);
  });

  it('partial or missing data holds too', () => {
    expect(simulate({ seconds: 5, start: 10, envoys: 2, policy: { minEnvoys: 3 }, load: () => 0 }).at(4)).to.include({ replicas: 10, reason: 'partial-data' });
    expect(simulate({ seconds: 5, start: 10, load: () => null }).at(4)).to.include({ replicas: 10, reason: 'no-data' });
  });

  it('starting pods count as capacity on the way: one surge asks once while GPU pods load', () => {
    const r = simulate({ seconds: 200, start: 4, loadSeconds: 120, load: (t) => (t < 5 ? 4 * T : 10 * T) });
    expect(r.at(10).replicas).to.equal(10);
    for (let t = 11; t < 130; t++) expect(r.at(t).replicas, `t=${t}`).to.equal(10);
    expect(r.at(60).reason).to.equal('capacity-on-the-way');
    expect(r.at(60).inputs.ready).to.equal(4);
  });

  it('stays within min and max', () => {
    const idle = simulate({ seconds: 900, start: 5, policy: { minReplicas: 3 }, load: () => 0 });
    expect(Math.min(...idle.decisions.map((d) => d.replicas))).to.equal(3);
    expect(idle.at(899).reason).to.equal('at-min');
    const flood = simulate({ seconds: 30, start: 5, policy: { maxReplicas: 12 }, load: () => 100 * T });
    expect(Math.max(...flood.decisions.map((d) => d.replicas))).to.equal(12);
    expect(flood.at(29).reason).to.equal('at-max');
    expect(simulate({ seconds: 2, start: 1, policy: { minReplicas: 2 }, load: () => null }).at(0)).to.include({ replicas: 2, reason: 'below-min' });
    expect(simulate({ seconds: 2, start: 20, policy: { maxReplicas: 12 }, load: () => T }).at(0)).to.include({ replicas: 12, reason: 'above-max' });
  });

  it('playbooks: surge and emergency take over by pressure on the ready pods, and an operator can force one', () => {
    // New pods take a minute to load, so the pressure on the ready ones builds.
    const surge = simulate({ seconds: 10, start: 10, loadSeconds: 60, load: (t) => (t < 3 ? 10 * T : 17 * T) });
    expect(surge.at(5).mode).to.equal('normal');
    expect(surge.at(8).mode).to.equal('surge');
    const emergency = simulate({ seconds: 10, start: 10, loadSeconds: 60, load: (t) => (t < 3 ? 10 * T : 40 * T) });
    expect(emergency.at(6).mode).to.equal('emergency');
    expect(emergency.at(6).inputs.targetPerPod).to.equal(DEFAULT_POLICY.modes.emergency.targetPerPod);
    // The emergency playbook asks for everything at once (normal mode would at most double per decision),
    // with more headroom per pod.
    expect(emergency.at(6).replicas).to.equal(Math.ceil(emergency.at(6).inputs.panicDemand! / DEFAULT_POLICY.modes.emergency.targetPerPod));
    const forced = simulate({ seconds: 5, start: 10, policy: { forcedMode: 'emergency' }, load: () => 10 * T });
    expect(forced.at(4).mode).to.equal('emergency');
    // Left only after a stable window without the pressure.
    const calm = simulate({ seconds: 200, start: 10, loadSeconds: 60, load: (t) => (t >= 3 && t < 12 ? 40 * T : 10 * T) });
    expect(calm.at(30).mode).to.equal('emergency');
    expect(calm.at(199).mode).to.equal('normal');
  });

  it('external change: holds what someone else set for the cool-off, bounds included, then resumes', () => {
    const policy = { ...DEFAULT_POLICY, maxReplicas: 12, externalCoolOffMs: 60_000 };
    const history = [{ at: 0, activeRequests: 6 * T, envoys: 10 }];
    const at = (now: number, desired: number) => decide({ history: [{ ...history[0]!, at: now }], replicas: { desired, ready: desired }, policy, now, externalChangeAt: 1_000 });
    expect(at(30_000, 5)).to.include({ replicas: 5, action: 'hold', reason: 'external-change' });
    expect(at(30_000, 20)).to.include({ replicas: 20, reason: 'external-change' });
    expect(at(61_000, 5)).to.include({ replicas: 6, reason: 'scale-up' });
    expect(at(61_000, 20)).to.include({ replicas: 12, reason: 'above-max' });
  });

  it('is deterministic and explains itself', () => {
    const run = () => simulate({ seconds: 300, start: 3, load: (t) => (t % 97 < 40 ? 9 * T : 3 * T) }).decisions;
    expect(run()).to.deep.equal(run());
    const d = run()[50]!;
    expect(d.inputs).to.have.keys('now', 'desired', 'ready', 'stableDemand', 'panicDemand', 'targetPerPod', 'wanted', 'samples', 'latestAgeMs', 'envoys', 'queueWaiting', 'kvCacheUsage');
    expect(d.inputs).to.include({ queueWaiting: null, kvCacheUsage: null });
  });

  it('measures each scale-up step from the ready pods: while pods load, a queue swelling the count in flight does not compound the step every second', () => {
    // 10 pods serve; a burst outruns them and the queue grows 20,000 a second while new pods take 90 s to load.
    const r = simulate({ seconds: 60, start: 10, loadSeconds: 90, load: (t) => 10 * 256 + 20_000 * t });
    const cap = 10 + Math.max(DEFAULT_POLICY.modes.emergency.maxUpPods, Math.ceil((10 * DEFAULT_POLICY.modes.emergency.maxUpPercent) / 100));
    expect(Math.max(...r.decisions.map((d) => d.replicas)), 'at most one emergency step from the 10 ready pods').to.equal(cap);
    expect(r.at(59)).to.include({ replicas: cap, reason: 'capacity-on-the-way' });
  });

  describe('the queue signal (optional: vLLM\'s waiting requests and KV-cache usage)', () => {
    const policy: ScalingPolicy = { ...DEFAULT_POLICY, queueSignal: { waitingPerPod: 5, kvCacheUsage: 0.9 } };
    const history = Array.from({ length: 60 }, (_, t) => ({ at: t * 1000, activeRequests: 4 * T * 0.95, envoys: 10 }));
    const at = (queue?: { waiting: number; kvCacheUsage: number | null; at?: number }, p = policy, replicas = { desired: 4, ready: 4 }) =>
      decide({ history, replicas, policy: p, now: 59_000, ...(queue && { queue: { at: queue.at ?? 58_500, pods: 4, waiting: queue.waiting, kvCacheUsage: queue.kvCacheUsage } }) });

    it('adds a step of pods when the pods\' queues grow though the in-flight count is within target', () => {
      expect(at()).to.include({ replicas: 4, reason: 'within-tolerance' });
      const d = at({ waiting: 40, kvCacheUsage: 0.5 });
      expect(d).to.include({ action: 'scale-up', reason: 'queue-pressure', replicas: 4 + DEFAULT_POLICY.modes.normal.maxUpPods });
      expect(d.inputs).to.include({ queueWaiting: 40, kvCacheUsage: 0.5 });
      expect(at({ waiting: 0, kvCacheUsage: 0.95 })).to.include({ reason: 'queue-pressure' });
      expect(at({ waiting: 19, kvCacheUsage: 0.5 }), 'under 5 waiting per pod').to.include({ reason: 'within-tolerance' });
    });

    it('is off by default, ignores a stale reading, and counts pods still loading as capacity on the way', () => {
      expect(at({ waiting: 400, kvCacheUsage: 1 }, DEFAULT_POLICY)).to.include({ reason: 'within-tolerance' });
      expect(at({ waiting: 400, kvCacheUsage: 1, at: 40_000 })).to.include({ reason: 'within-tolerance' });
      expect(at({ waiting: 400, kvCacheUsage: 1 }, policy, { desired: 8, ready: 4 })).to.include({ replicas: 8, reason: 'capacity-on-the-way' });
    });

    it('never scales down while the queues are full', () => {
      const low = Array.from({ length: 400 }, (_, t) => ({ at: t * 1000, activeRequests: T, envoys: 10 }));
      const d = decide({ history: low, replicas: { desired: 8, ready: 8 }, policy, now: 399_000, state: { mode: 'normal', modeUntil: 0, panicUntil: 0, panicRecurs: false, recommendations: [], since: 0 }, queue: { at: 398_000, pods: 8, waiting: 80, kvCacheUsage: null } });
      expect(d.action).to.equal('scale-up');
      expect(d.reason).to.equal('queue-pressure');
    });
  });
});
