import { expect } from 'chai';
import { createMemoryLogger } from '../../src/observability/log.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { nextTurn, runSteps, runStepsAsync, turnUsed, type Steps } from '../../src/steps.js';
import { translate, translateSteps } from '../../src/translate/translate.js';
import { createSnapshotCache, DEFAULT_GROUP } from '../../src/xds/cache.js';
import { createPublisher } from '../../src/xds/publisher.js';
import { TypeUrl } from '../../src/xds/resources.js';
import { buildSnapshot } from '../../src/xds/snapshot.js';
import { encodeStrict, messageType } from '../../src/xds/protos.js';
import { envoyRoutes } from '../../src/translate/route.js';
import { ep, model, svc } from '../support/builders.js';

/** A clock that moves 1 ms per reading: with a 1 ms slice, every step ends a slice. */
function tickingClock(): () => number {
  let t = 0;
  return () => t++;
}

function* counted(n: number, log: string[]): Steps<number> {
  for (let i = 0; i < n; i++) {
    log.push(`step ${i}`);
    yield;
  }
  return n;
}

const fleet = (services: number, endpoints: number, port = 80) =>
  model(Array.from({ length: services }, (_, s) => svc(`s${s}`, Array.from({ length: endpoints }, (_, e) => ep(`10.${s}.${e >> 8}.${e & 255}`, port)))));

describe('work in slices (src/steps.ts)', () => {
  it('gives the event loop a turn whenever a slice of time is used up, and only then', async () => {
    const log: string[] = [];
    const ticker = () => setImmediate(() => log.push('turn'));
    ticker();
    const result = await runStepsAsync(counted(3, log), { sliceMs: 1, now: tickingClock() });
    expect(result).to.equal(3);
    expect(log.indexOf('turn')).to.be.within(1, 2); // the loop ran between the steps, not after them all

    const still: string[] = [];
    setImmediate(() => still.push('turn'));
    await runStepsAsync(counted(50, still), { sliceMs: 1, now: () => 0 }); // a clock that never moves: no turn
    expect(still.slice(0, 50).every((x) => x.startsWith('step'))).to.equal(true);
  });

  it('wakes everything waiting for the next turn together, at the start of one shared slice', async () => {
    const order: string[] = [];
    const a = nextTurn().then(() => order.push('a'));
    const b = nextTurn().then(() => order.push('b'));
    setImmediate(() => order.push('later immediate')); // queued after both: runs after them
    await Promise.all([a, b]);
    expect(order).to.deep.equal(['a', 'b']);
    expect(turnUsed(60_000)).to.equal(false); // the slice just started
    expect(turnUsed(0)).to.equal(true);
    await new Promise((r) => setImmediate(r));
    expect(order).to.deep.equal(['a', 'b', 'later immediate']);
  });

  it('counts work started by a timer against the slice of the turn that follows it', async () => {
    // Each step takes 2 ms of real time; 10 ms slices.
    function* spinning(): Steps<number> {
      for (let i = 0; i < 50; i++) {
        const until = performance.now() + 2;
        while (performance.now() < until);
        yield;
      }
      return 50;
    }
    let usedAtTurn: boolean | undefined;
    const job = await new Promise<Promise<number>>((resolve) => setTimeout(() => {
      // Woken first in the turn, before the job's next part can use anything of it.
      void nextTurn().then(() => (usedAtTurn = turnUsed(10)));
      const started = runStepsAsync(spinning(), { sliceMs: 10 });
      resolve(started);
    }, 0));
    expect(await job).to.equal(50);
    // The timer's part used the slice up: the turn after it starts with nothing left, not with 10 ms more.
    expect(usedAtTurn).to.equal(true);
  });

  it('runs the same steps to the same result at once, and passes on what they throw', async () => {
    expect(runSteps(counted(4, []))).to.equal(4);
    function* failing(): Steps<void> {
      yield;
      throw new Error('broken');
    }
    let caught: unknown;
    await runStepsAsync(failing(), { sliceMs: 1, now: tickingClock() }).catch((e) => (caught = e));
    expect((caught as Error).message).to.equal('broken');
  });

  it('encodes a large message in parts to exactly the bytes protobufjs writes at once, and finds a bad field deep inside', () => {
    const m = model(Array.from({ length: 600 }, (_, s) => svc(`s${s}`, [ep('10.0.0.1', 80)])));
    const table = envoyRoutes(m.listener, m.services).value as any;
    const type = messageType('envoy.config.route.v3.RouteConfiguration');
    const parts = encodeStrict('envoy.config.route.v3.RouteConfiguration', table);
    expect(parts.ok && Buffer.from(parts.value).equals(Buffer.from(type.encode(type.fromObject(table)).finish()))).to.equal(true);
    table.virtual_hosts[0].routes[555].route.timeout = { seconds: 'soon' };
    expect(encodeStrict('envoy.config.route.v3.RouteConfiguration', table)).to.deep.equal({
      ok: false,
      error: 'envoy.config.route.v3.RouteConfiguration.virtual_hosts[0].routes[555].route.timeout.seconds: expected a 64-bit integer',
    });
    table.virtual_hosts[0].typo = true;
    expect(encodeStrict('envoy.config.route.v3.RouteConfiguration', table)).to.deep.include({ ok: false });
  });

  it('translates a model in slices to exactly what translate() gives', async () => {
    const m = fleet(70, 3);
    expect(await runStepsAsync(translateSteps(m), { sliceMs: 1, now: tickingClock() })).to.deep.equal(translate(m));
  });
});

describe('the publisher builds one model at a time, in slices', () => {
  const setup = () => {
    const cache = createSnapshotCache();
    const metrics = createMetrics();
    const log = createMemoryLogger();
    const publisher = createPublisher({ cache, log, metrics, slice: { sliceMs: 1, now: tickingClock() } });
    const count = (result: string) => metrics.value('inferplane_snapshots_total', { result });
    return { cache, publisher, count, log };
  };

  it('serves the previous snapshot whole while the next is built, and lets I/O run meanwhile', async () => {
    const { cache, publisher } = setup();
    await publisher.publish(fleet(2, 2));
    const before = cache.get(DEFAULT_GROUP)!;
    const seen: string[] = [];
    let turns = 0;
    const spin = () => setImmediate(() => {
      turns++;
      seen.push(cache.get(DEFAULT_GROUP)!.version);
      if (turns < 1000) spin();
    });
    spin();
    const next = fleet(40, 20);
    const r = await publisher.publish(next);
    expect(r.ok).to.equal(true);
    expect(turns).to.be.greaterThan(10);
    expect(new Set(seen.slice(0, 10))).to.deep.equal(new Set([before.version])); // no half-built state shown
    expect(cache.get(DEFAULT_GROUP)!.version).to.equal(buildSnapshot(translate(next)).ok && (buildSnapshot(translate(next)) as any).value.version);
  });

  it('builds only the newest of the models that arrive during a build; every caller learns the outcome', async () => {
    const { cache, publisher, count } = setup();
    const first = publisher.publish(fleet(30, 5));
    const second = publisher.publish(fleet(2, 1));
    const third = publisher.publish(fleet(3, 1));
    const [a, b, c] = await Promise.all([first, second, third]);
    expect(await count('published')).to.equal(2); // the first, then the third; the second was replaced before its turn
    expect(a.ok && b.ok && c.ok).to.equal(true);
    expect(b).to.equal(c);
    expect(cache.get(DEFAULT_GROUP)!.types[TypeUrl.Cluster].resources.size).to.equal(3);
  });

  it('merges the endpoint-only changes of replaced models, so the fast path still sees every change', async () => {
    const { cache, publisher, count } = setup();
    const base = fleet(3, 2);
    await publisher.publish(base);
    const moved = (m: typeof base, name: string, address: string) => ({
      ...m,
      services: m.services.map((s) => (s.name === name ? { ...s, endpoints: [{ ...s.endpoints[0]!, address }] } : s)),
    });
    const m1 = moved(base, 's0', '10.9.0.1');
    const m2 = moved(m1, 's1', '10.9.0.2');
    const m3 = moved(m2, 's2', '10.9.0.3');
    const building = publisher.publish(fleet(20, 20)); // keeps the builder busy while the three arrive
    const results = await Promise.all([building, publisher.publish(m1, new Set(['s0'])), publisher.publish(m2, new Set(['s1'])), publisher.publish(m3, new Set(['s2']))]);
    expect(results.every((r) => r.ok)).to.equal(true);
    const want = buildSnapshot(translate(m3));
    expect(want.ok && cache.get(DEFAULT_GROUP)!.version === want.value.version).to.equal(true);
  });

  it('goes on to the next model after one is refused, keeping the last good snapshot until then', async () => {
    const { cache, publisher, log } = setup();
    await publisher.publish(fleet(1, 1));
    const good = cache.get(DEFAULT_GROUP)!.version;
    const tooBig = createPublisher({ cache, log, metrics: createMetrics(), maxResponseBytes: 64 * 1024, slice: { sliceMs: 1, now: tickingClock() } });
    const r = await tooBig.publish(fleet(1, 3000));
    expect(r.ok).to.equal(false);
    expect(cache.get(DEFAULT_GROUP)!.version).to.equal(good);
    expect((await tooBig.publish(fleet(2, 1))).ok).to.equal(true);
    expect(cache.get(DEFAULT_GROUP)!.version).not.to.equal(good);
    expect(log.lines.some((l) => l.msg.startsWith('snapshot rejected'))).to.equal(true);
  });
});
