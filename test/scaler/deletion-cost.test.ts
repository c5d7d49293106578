import { expect } from 'chai';
import { createMemoryLogger } from '../../src/observability/log.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { deletionCosts } from '../../src/scaler/deletion-cost.js';
import type { PolicySource } from '../../src/scaler/policy-source.js';
import { readPolicy } from '../../src/scaler/policy.js';
import { selectorText } from '../../src/scaler/replicas.js';
import type { PodInfo, ReplicaStore } from '../../src/scaler/replica-store.js';
import { createScaler } from '../../src/scaler/scaler.js';
import { createFleetStats } from '../../src/scaler/stats.js';
import { createFakeTimers } from '../support/fake-timers.js';

const pod = (name: string, ip: string | undefined, o: Partial<PodInfo> = {}): PodInfo => ({ name, ready: true, deleting: false, ...(ip !== undefined && { ip }), ...o });

describe('scale-down picks the idlest pods: deletion costs', () => {
  it('costs are the requests in flight; an unread ready pod counts as the busiest, an unread unready one as 0; pods being deleted are left alone', () => {
    const pods = [
      pod('a', '10.0.0.1'), pod('b', '10.0.0.2'), pod('c', '10.0.0.3'),
      pod('silent', '10.0.0.4'), pod('starting', '10.0.0.5', { ready: false }), pod('no-ip', undefined, { ready: false }),
      pod('going', '10.0.0.6', { deleting: true }),
    ];
    const load = new Map([['10.0.0.1', 12], ['10.0.0.2', 0], ['10.0.0.3', 7.4], ['10.0.0.6', 99]]);
    expect(Object.fromEntries(deletionCosts(pods, load))).to.deep.equal({ a: 12, b: 0, c: 7, silent: 12, starting: 0, 'no-ip': 0 });
    expect(Object.fromEntries(deletionCosts([pod('x', '10.0.0.9')], new Map())), 'nothing read: stale costs reset to 0').to.deep.equal({ x: 0 });
    expect(deletionCosts([pod('x', '10.0.0.9')], new Map([['10.0.0.9', 1e12]])).get('x'), 'an int32').to.equal(2 ** 31 - 1);
  });

  it('spells a Deployment\'s selector as the labelSelector parameter, and has none for an empty or unknown one', () => {
    expect(selectorText({ matchLabels: { app: 'llm', tier: 'gpu' }, matchExpressions: [
      { key: 'zone', operator: 'In', values: ['a', 'b'] }, { key: 'canary', operator: 'NotIn', values: ['yes'] },
      { key: 'model', operator: 'Exists' }, { key: 'legacy', operator: 'DoesNotExist' },
    ] })).to.equal('app=llm,tier=gpu,zone in (a,b),canary notin (yes),model,!legacy');
    expect(selectorText({})).to.equal(undefined);
    expect(selectorText(undefined)).to.equal(undefined);
    expect(selectorText({ matchExpressions: [{ key: 'x', operator: 'Gt', values: ['1'] }] })).to.equal(undefined);
  });

  it('takes scaleDownIdlestFirst in the policy, on by default, and refuses a non-boolean with its path', () => {
    const on = readPolicy('services:\n  ml/a: { deployment: a }\n');
    expect(on.ok && on.value[0]!.policy.scaleDownIdlestFirst).to.equal(true);
    const off = readPolicy('defaults: { scaleDownIdlestFirst: false }\nservices:\n  ml/a: { deployment: a }\n');
    expect(off.ok && off.value[0]!.policy.scaleDownIdlestFirst).to.equal(false);
    const bad = readPolicy('services:\n  ml/a: { deployment: a, scaleDownIdlestFirst: "yes" }\n');
    expect(!bad.ok && bad.error[0]!.path).to.deep.equal(['services', 'ml/a', 'scaleDownIdlestFirst']);
  });

  describe('in the scaler loop (virtual clock)', () => {
    const policy = readPolicy('services:\n  ml/a: { deployment: a, scaleDownWindow: 2s, stableWindow: 2s, panicWindow: 1s, modes: { normal: { maxDownPercent: 50 } } }\n');
    if (!policy.ok) throw new Error('bad test policy');
    const source: PolicySource = { start() {}, stop: async () => undefined, current: () => policy.value, status: () => ({ source: 'test', version: '1', loadedAt: null, rejected: null }) };

    /** A store at 4 replicas with 4 pods; `patch` decides each patch's fate. Returns what happened, in order. */
    const run = async (o: { patch: (pod: string) => Promise<void>; pods?: () => Promise<PodInfo[]>; dryRun?: boolean }) => {
      const timers = createFakeTimers();
      const stats = createFleetStats({ minIntervalMs: 0 });
      const calls: string[] = [];
      let replicas = 4;
      const store: ReplicaStore = {
        kind: 'kubernetes',
        read: async () => ({ desired: replicas, ready: replicas, version: String(replicas), selector: 'app=a' }),
        write: async (_t, n) => {
          calls.push(`write ${n}`);
          replicas = n;
          return 'written';
        },
        pods: o.pods ?? (async (_t, selector) => {
          calls.push(`list ${selector}`);
          return ['p1', 'p2', 'p3', 'p4'].map((n, i) => pod(n, `10.0.0.${i + 1}`, n === 'p2' ? { deletionCost: '5' } : {}));
        }),
        setDeletionCost: async (_t, name, cost) => {
          await o.patch(name);
          calls.push(`cost ${name}=${cost}`);
        },
      };
      const podLoad = async () => new Map([['10.0.0.1', 9], ['10.0.0.2', 5], ['10.0.0.3', 0], ['10.0.0.4', 2]]);
      const log = createMemoryLogger();
      const metrics = createMetrics();
      const scaler = createScaler({ stats, policy: source, store, podLoad, dryRun: o.dryRun ?? false, log, metrics, timers, apiTimeoutMs: 5_000 });
      for (let t = 0; t < 5 && calls.every((c) => !c.startsWith('write')); t++) {
        stats.record('envoy-1', timers.now(), new Map([['ml/a/http', 10]]));
        const round = scaler.tick();
        for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
        timers.advance(5_000);
        await round;
        timers.advance(1_000);
      }
      return { calls, status: scaler.status(), log, metrics: await metrics.render() };
    };

    it('sets every changed cost before the write, skips the ones already right, and records them with the decision', async () => {
      const { calls, status, metrics } = await run({ patch: async () => undefined });
      expect(calls[0]).to.equal('list app=a');
      expect(calls.slice(1, 4).sort()).to.deep.equal(['cost p1=9', 'cost p3=0', 'cost p4=2']);
      expect(calls[4]).to.equal('write 2');
      expect(status.decisions[0]).to.deep.include({ action: 'scale-down', outcome: 'written', deletionCosts: { set: { p1: 9, p3: 0, p4: 2 }, unchanged: 1 } });
      expect(metrics).to.contain('inferplane_scaler_deletion_cost_writes_total{outcome="set",service="ml/a"} 3');
    });

    it('a refused patch or a listing that never answers costs only the choice of pods: the scale-down goes ahead, with the error recorded', async () => {
      const refused = await run({ patch: async (name) => {
        if (name === 'p3') throw new Error('setting the deletion cost of pod ml/p3: HTTP 403: forbidden');
      } });
      expect(refused.calls.at(-1)).to.equal('write 2');
      expect(refused.status.decisions[0]!.deletionCosts!.error).to.equal('setting the deletion cost of pod ml/p3: HTTP 403: forbidden');
      expect(refused.metrics).to.contain('inferplane_scaler_deletion_cost_writes_total{outcome="error",service="ml/a"} 1');
      expect(refused.log.lines.some((e) => e.msg.startsWith('pod deletion costs not all set'))).to.equal(true);

      const hung = await run({ patch: async () => undefined, pods: () => new Promise(() => undefined) });
      expect(hung.calls).to.deep.equal(['write 2']);
      expect(hung.status.decisions[0]!.deletionCosts!.error).to.equal('listing the pods of ml/a: no answer within 5000 ms');
    });

    it('a dry run sets no costs', async () => {
      const { calls, status } = await run({ patch: async () => undefined, dryRun: true });
      expect(calls).to.deep.equal([]);
      expect(status.decisions[0]).to.include({ action: 'scale-down', outcome: 'dry-run' });
    });
  });
});
