import { expect } from 'chai';
import { createMemoryLogger } from '../../src/observability/log.js';
import { createMetrics } from '../../src/observability/metrics.js';
import type { LeaderElector } from '../../src/scaler/lease.js';
import type { PolicySource } from '../../src/scaler/policy-source.js';
import { readPolicy } from '../../src/scaler/policy.js';
import type { ReplicaStore } from '../../src/scaler/replica-store.js';
import { createScaler, ForceError, MODES_ANNOTATION, type ModeState } from '../../src/scaler/scaler.js';
import { createFleetStats } from '../../src/scaler/stats.js';
import { createFakeTimers } from '../support/fake-timers.js';
import { isLoopback, startAdminServer, type AdminServer } from '../../src/observability/admin.js';
import { createSnapshotCache } from '../../src/xds/cache.js';
import { inferplane } from '../support/processes.js';

/** A LeaderElector under the test's control: leading or not, and the Lease's annotations as written. */
function fakeElection(leading: boolean) {
  const lease: Record<string, string> = {};
  const e: LeaderElector & { leading: boolean; lease: Record<string, string> } = {
    leading, lease,
    start() {},
    stop: async () => undefined,
    isLeader: () => e.leading,
    holder: () => ({ identity: e.leading ? 'me' : 'the-leader', annotations: { ...lease } }),
    annotate: (k, v) => void (lease[k] = v),
  };
  return e;
}

describe('modes as the data plane follows them: the scaler\'s, the policy\'s, an operator\'s, the leader\'s', () => {
  const policyOf = (text: string): PolicySource => {
    const p = readPolicy(text);
    if (!p.ok) throw new Error('bad test policy');
    return { start() {}, stop: async () => undefined, current: () => p.value, status: () => ({ source: 'test', version: '1', loadedAt: null, rejected: null }) };
  };
  const POLICY = 'services:\n  ml/a: { deployment: a, stableWindow: 2s, panicWindow: 1s, modes: { normal: { targetPerPod: 10 } } }\n';
  const setup = (o: { leading?: boolean; policy?: string } = {}) => {
    const timers = createFakeTimers();
    const stats = createFleetStats({ minIntervalMs: 0 });
    const store: ReplicaStore = { kind: 'endpoints', read: async () => ({ desired: 2, ready: 2, version: '2' }) };
    const seen: Record<string, ModeState>[] = [];
    const election = fakeElection(o.leading ?? true);
    const metrics = createMetrics();
    const scaler = createScaler({
      stats, policy: policyOf(o.policy ?? POLICY), store, dryRun: true, log: createMemoryLogger(), metrics, timers, election,
      onModes: (m) => seen.push(Object.fromEntries(m)), known: (s) => s === 'ml/b',
    });
    const load = async (active: number) => {
      stats.record('envoy-1', timers.now(), new Map([['ml/a/http', active]]));
      await scaler.tick();
      timers.advance(500);
    };
    return { timers, scaler, seen, election, load, metrics };
  };

  it('follows the scaler\'s pressure logic: surge at once, normal only after a stable window, published on the Lease', async () => {
    const { scaler, seen, election, load } = setup();
    await load(10);
    expect(seen).to.deep.equal([]);
    await load(80); // over 2 pods at 10 each: a panic-window pressure of at least 1.5, a surge
    expect(seen.at(-1)!['ml/a']).to.include({ mode: 'surge', reason: 'scaler' });
    expect(JSON.parse(election.lease[MODES_ANNOTATION]!)).to.deep.equal({ 'ml/a': 'surge' });
    for (let i = 0; i < 3; i++) await load(10);
    expect(scaler.status().modes['ml/a']?.mode, 'held within the stable window').to.equal('surge');
    for (let i = 0; i < 4; i++) await load(10);
    expect(seen.at(-1)).to.deep.equal({});
    expect(seen.length).to.equal(2);
    expect(JSON.parse(election.lease[MODES_ANNOTATION]!)).to.deep.equal({});
  });

  it('an operator forces a mode at once (no round needed), for a while or until auto; it beats the policy and holds the scaling targets too', async () => {
    const { scaler, seen, timers, load, metrics } = setup({ policy: POLICY.replace('deployment: a,', 'deployment: a, mode: surge,') });
    await load(10);
    expect(scaler.status().modes['ml/a']).to.include({ mode: 'surge', reason: 'policy' });
    const forced = await scaler.force('ml/a', 'emergency', 60_000);
    expect(forced).to.include({ mode: 'emergency', reason: 'operator', until: new Date(timers.now() + 60_000).toISOString() });
    expect(seen.at(-1)!['ml/a']!.mode, 'published before any round').to.equal('emergency');
    await load(10);
    expect(scaler.status().services['ml/a']!.last!.mode, 'the decision ran in the forced mode').to.equal('emergency');
    await scaler.force('ml/b', 'surge');
    expect(scaler.status().modes['ml/b'], 'a served service the policy does not scale').to.include({ mode: 'surge', reason: 'operator', until: null });
    timers.advance(60_000);
    await load(10);
    expect(scaler.status().modes['ml/a'], 'expired: back to the policy\'s').to.include({ mode: 'surge', reason: 'policy' });
    expect(await scaler.force('ml/b', 'auto')).to.equal(null);
    expect(await metrics.render()).to.contain('inferplane_playbook_mode_changes_total{mode="emergency",reason="operator",service="ml/a"} 1');
    await expectForce(scaler.force('ml/zzz', 'surge'), 'bad-request', 'no service "ml/zzz" is scaled or served here');
    await expectForce(scaler.force('ml/a', 'panic' as never), 'bad-request', '"panic" is not a mode: auto, normal, surge, emergency');
    await expectForce(scaler.force('ml/a', 'surge', 0), 'bad-request', 'the duration must be above zero');
  });

  it('a standby refuses to force (naming the leader) and follows what the leader published on the Lease', async () => {
    const { scaler, seen, election, load } = setup({ leading: false });
    await expectForce(scaler.force('ml/a', 'emergency'), 'standby', 'this replica stands by; force the mode on the leader (the-leader)');
    await load(100); // its own stats never decide its modes
    expect(seen).to.deep.equal([]);
    election.lease[MODES_ANNOTATION] = JSON.stringify({ 'ml/a': 'emergency', 'ml/c': 'bogus' });
    await load(0);
    expect(seen.at(-1)).to.deep.equal({ 'ml/a': { mode: 'emergency', reason: 'leader', since: seen.at(-1)!['ml/a']!.since, until: null } });
    election.lease[MODES_ANNOTATION] = 'not json';
    await load(0);
    expect(scaler.status().modes['ml/a']?.mode, 'a garbled annotation changes nothing').to.equal('emergency');
    election.lease[MODES_ANNOTATION] = '{}';
    await load(0);
    expect(seen.at(-1)).to.deep.equal({});
  });

  it('a new leader carries the mode it followed for a stable window, rather than dropping the playbook at the change', async () => {
    const { scaler, election, load } = setup({ leading: false });
    election.lease[MODES_ANNOTATION] = JSON.stringify({ 'ml/a': 'surge' });
    await load(10);
    expect(scaler.status().modes['ml/a']).to.include({ mode: 'surge', reason: 'leader' });
    election.leading = true; // the leader is gone; the pressure went with it (10 over 2 pods at 10: normal)
    await load(10);
    expect(scaler.status().modes['ml/a']).to.include({ mode: 'surge', reason: 'scaler' });
    for (let i = 0; i < 5; i++) await load(10);
    expect(scaler.status().modes['ml/a'], 'normal after its own stable window').to.equal(undefined);
  });
});

async function expectForce(p: Promise<unknown>, kind: ForceError['kind'], message: string): Promise<void> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e).to.be.instanceOf(ForceError);
  expect(e).to.include({ kind, message });
}

describe('POST /scaler/mode and inferplane mode: the operator\'s switch', () => {
  let admin: AdminServer;
  const calls: unknown[][] = [];
  let standby = false;
  before(async () => {
    admin = await startAdminServer('127.0.0.1', 0, {
      xds: { nodes: () => [] }, cache: createSnapshotCache(), metrics: createMetrics(), ready: () => true, fleet: () => ({ services: {}, reporters: [] }),
      forceMode: async (...args) => {
        calls.push(args);
        if (standby) throw new ForceError('standby', 'this replica stands by; force the mode on the leader (pod-0)');
        if (args[0] !== 'ml/a') throw new ForceError('bad-request', `no service "${String(args[0])}" is scaled or served here`);
        return { mode: args[1], reason: 'operator', since: 'now', until: null };
      },
    });
  });
  after(() => admin.close());
  const post = (body: unknown, type = 'application/json') => fetch(`http://127.0.0.1:${admin.port}/scaler/mode`, { method: 'POST', headers: { 'content-type': type }, body: typeof body === 'string' ? body : JSON.stringify(body) });

  it('answers what it did, and refuses bad requests with a reason', async () => {
    const ok = await post({ service: 'ml/a', mode: 'emergency', for: '10m' });
    expect(ok.status).to.equal(200);
    expect(await ok.json()).to.deep.equal({ service: 'ml/a', mode: 'emergency', state: { mode: 'emergency', reason: 'operator', since: 'now', until: null } });
    expect(calls.at(-1)).to.deep.equal(['ml/a', 'emergency', 600_000]);
    const cases: [unknown, string, number, string][] = [
      [{ service: 'ml/a', mode: 'surge' }, 'text/plain', 415, 'the body must be application/json'],
      ['{nope', 'application/json', 400, 'the body is not a JSON object: {"service": "...", "mode": "normal|surge|emergency|auto", "for": "10m"}'],
      [{ mode: 'surge' }, 'application/json', 400, 'service: expected the service name as a string'],
      [{ service: 'ml/a' }, 'application/json', 400, 'mode: expected normal, surge, emergency or auto'],
      [{ service: 'ml/a', mode: 'surge', for: 'a while' }, 'application/json', 400, 'for: "a while" is not a duration such as "500ms", "30s" or "2m"'],
      [{ service: 'ml/x', mode: 'surge' }, 'application/json', 400, 'no service "ml/x" is scaled or served here'],
      ['x'.repeat(5000), 'application/json', 413, 'the body is over 4096 bytes'],
    ];
    for (const [body, type, code, error] of cases) {
      const r = await post(body, type);
      expect([r.status, ((await r.json()) as { error: string }).error]).to.deep.equal([code, error]);
    }
    expect((await fetch(`http://127.0.0.1:${admin.port}/scaler/mode`)).status).to.equal(405);
    expect([isLoopback('127.0.0.1'), isLoopback('::1'), isLoopback('::ffff:127.0.0.1'), isLoopback('10.0.0.1'), isLoopback('::ffff:10.0.0.1'), isLoopback(undefined)]).to.deep.equal([true, true, true, false, false, false]);
  });

  it('a standby answers 409, and the CLI says so in one line with exit code 1', async () => {
    standby = true;
    try {
      const r = await post({ service: 'ml/a', mode: 'surge' });
      expect(r.status).to.equal(409);
      const cli = inferplane(['mode', 'ml/a', 'surge', '--admin', `http://127.0.0.1:${admin.port}`]);
      expect(await cli.exited).to.equal(1);
      expect(cli.err()).to.equal('inferplane mode: this replica stands by; force the mode on the leader (pod-0) (HTTP 409)\n');
    } finally {
      standby = false;
    }
    const bad = inferplane(['mode', 'ml/a', 'panic']);
    expect(await bad.exited, 'a usage error').to.equal(2);
    expect(bad.err()).to.contain('"panic" is not a mode: normal, surge, emergency or auto');
    const ok = inferplane(['mode', 'ml/a', 'emergency', '--for', '10m', '--admin', `http://127.0.0.1:${admin.port}`]);
    expect(await ok.exited, ok.err()).to.equal(0);
    expect(ok.out()).to.equal('ml/a: emergency (forced until set back to auto)\n');
  });
});
