import { expect } from 'chai';
import { createMemoryLogger } from '../../src/observability/log.js';
import { createMetrics } from '../../src/observability/metrics.js';
import type { PolicySource } from '../../src/scaler/policy-source.js';
import { readPolicy } from '../../src/scaler/policy.js';
import type { ReplicaStore } from '../../src/scaler/replica-store.js';
import { createScaler } from '../../src/scaler/scaler.js';
import { DEFAULT_POLICY } from '../../src/scaler/decide.js';

/** The default policy's normal target: in flight per pod at which the active policy holds. */
const T = DEFAULT_POLICY.modes.normal.targetPerPod;
import { createFleetStats } from '../../src/scaler/stats.js';
import { createFakeTimers } from '../support/fake-timers.js';

describe('scaler loop, on a virtual clock (a replica store whose API can hang)', () => {
  const policy = readPolicy('services:\n  ml/a: { deployment: a, maxReplicas: 50 }\n');
  if (!policy.ok) throw new Error('bad test policy');
  const source: PolicySource = { start() {}, stop: async () => undefined, current: () => policy.value, status: () => ({ source: 'test', version: '1', loadedAt: null, rejected: null }) };

  it('gives up on an API call that does not answer, says so, and does not mistake a late write for someone else\'s', async () => {
    const timers = createFakeTimers();
    const stats = createFleetStats();
    let replicas = 2;
    let hangWrite = true;
    const store: ReplicaStore = {
      kind: 'kubernetes',
      read: async () => ({ desired: replicas, ready: replicas, version: String(replicas) }),
      write: (_t, n) => {
        if (!hangWrite) {
          replicas = n;
          return Promise.resolve('written');
        }
        // Lands later, after the scaler gave up on it.
        return new Promise(() => void timers.setTimeout(() => void (replicas = n), 8_000));
      },
    };
    const scaler = createScaler({ stats, policy: source, store, dryRun: false, log: createMemoryLogger(), metrics: createMetrics(), timers, apiTimeoutMs: 5_000 });
    stats.record('envoy-1', timers.now(), new Map([['ml/a/http', T * 4]]));
    const round = scaler.tick();
    await new Promise((r) => setImmediate(r));
    timers.advance(5_000);
    await round;
    const failed = scaler.status().decisions[0]!;
    expect(failed).to.include({ reason: 'api-error', outcome: 'error', action: 'scale-up', replicas: 4 });
    expect(failed.error).to.equal('scaling ml/a to 4: no answer within 5000 ms');
    timers.advance(3_000);
    expect(replicas).to.equal(4);
    hangWrite = false;
    stats.record('envoy-1', timers.now(), new Map([['ml/a/http', T * 4]]));
    await scaler.tick();
    expect(scaler.status().decisions[0]).to.include({ reason: 'within-tolerance', outcome: 'unchanged', replicas: 4 });
    expect(scaler.status().services['ml/a']!.externalChangeAt).to.equal(null);
  });

  it('answers a surge at once though one Envoy went silent, and says in /status/scaler which Envoy it left out and why', async () => {
    const timers = createFakeTimers();
    const stats = createFleetStats({ minIntervalMs: 0 });
    let replicas = 2;
    const store: ReplicaStore = {
      kind: 'kubernetes',
      read: async () => ({ desired: replicas, ready: replicas, version: String(replicas) }),
      write: async (_t, n) => {
        replicas = n;
        return 'written';
      },
    };
    const metrics = createMetrics();
    const scaler = createScaler({ stats, policy: source, store, dryRun: false, log: createMemoryLogger(), metrics, timers });
    const report = (node: string, active: number) => stats.record(node, timers.now(), new Map([['ml/a/http', active]]));
    for (let t = 0; t < 5; t++) {
      for (const n of ['envoy-1', 'envoy-2', 'envoy-3']) report(n, (2 * T) / 3);
      await scaler.tick();
      timers.advance(1_000);
    }
    expect(replicas).to.equal(2);
    // envoy-3 goes silent; 11 s later the other two carry a surge (the default maxSampleAge is 10 s).
    timers.advance(11_000);
    report('envoy-1', 600);
    report('envoy-2', 600);
    await scaler.tick();
    expect(replicas).to.be.greaterThan(2);
    const status = scaler.status();
    expect(status.decisions[0]).to.include({ action: 'scale-up', outcome: 'written' });
    expect(status.decisions[0]!.inputs!.envoys).to.equal(2);
    expect(status.services['ml/a']!.excludedReporters).to.deep.equal([{ nodeId: 'envoy-3', envoys: 1, ageMs: 12_000, reason: 'its latest report is 12.0 s old (maxSampleAge 10.0 s)' }]);
    expect(await metrics.value('inferplane_scaler_decision_duration_seconds', { service: 'ml/a' }), 'one observation per decision').to.equal(6);
    expect(await metrics.value('inferplane_scaler_scale_write_duration_seconds', { service: 'ml/a', outcome: 'written' }), 'one per write').to.equal(1);
  });

  it('runs a shadow policy beside the active one on the same readings: decided, logged, counted and shown, never written', async () => {
    const timers = createFakeTimers();
    const stats = createFleetStats({ minIntervalMs: 0 });
    const candidate = readPolicy('services:\n  ml/a: { deployment: a, maxReplicas: 50, modes: { normal: { targetPerPod: 30 } } }\n');
    if (!candidate.ok) throw new Error('bad candidate');
    const shadow: PolicySource = { start() {}, stop: async () => undefined, current: () => candidate.value, status: () => ({ source: 'file:candidate.yaml', version: '2', loadedAt: null, rejected: null }) };
    let replicas = 4;
    const writes: number[] = [];
    const store: ReplicaStore = {
      kind: 'kubernetes',
      read: async () => ({ desired: replicas, ready: replicas, version: String(replicas) }),
      write: async (_t, n) => {
        writes.push(n);
        replicas = n;
        return 'written';
      },
    };
    const metrics = createMetrics();
    const log = createMemoryLogger();
    const scaler = createScaler({ stats, policy: source, shadow, store, dryRun: false, log, metrics, timers });
    // 4 pods at the default target (98) in flight each: the active policy holds; the candidate (target 30) sees three times its capacity,
    // an emergency at its emergency target (30 × 86 / 98): 392 / 26.3 → 15 pods.
    for (let t = 0; t < 5; t++) {
      stats.record('envoy-1', timers.now(), new Map([['ml/a/http', T * 4]]));
      await scaler.tick();
      timers.advance(1_000);
    }
    expect(writes, 'the shadow never writes').to.deep.equal([]);
    const status = scaler.status();
    expect(status.shadowPolicy).to.include({ source: 'file:candidate.yaml', version: '2' });
    expect(status.services['ml/a']!.last).to.include({ action: 'hold', replicas: 4 });
    expect(status.services['ml/a']!.shadow).to.include({ action: 'scale-up', replicas: 15, reason: 'panic-scale-up' });
    expect(await metrics.value('inferplane_scaler_shadow_decisions_total', { service: 'ml/a', action: 'scale-up', reason: 'panic-scale-up' })).to.equal(5);
    expect(await metrics.value('inferplane_scaler_shadow_desired_replicas', { service: 'ml/a' })).to.equal(15);
    const lines = log.lines.filter((l) => l.msg === 'shadow scaling decision (not applied)');
    expect(lines.filter((l) => l.level === 'info'), 'logged at info when it changes, at debug while it repeats').to.have.length(1);
    expect(lines[0]!.fields).to.include({ service: 'ml/a', replicas: 15, action: 'scale-up', current: 4 });
  });
});
