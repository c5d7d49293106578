import { expect } from 'chai';
import { backoffDelay, createDebouncer } from '../../../src/sources/kubernetes/timers.js';
import { createFakeTimers } from '../../support/fake-timers.js';

describe('createDebouncer', () => {
  it('fires once after a quiet hold-off, and never later than the maximum delay in a steady trickle', () => {
    const timers = createFakeTimers();
    const fired: number[] = [];
    const d = createDebouncer({ holdOffMs: 100, maxDelayMs: 1000, timers, fire: () => fired.push(timers.now()) });
    d.poke();
    timers.advance(50);
    d.poke();
    timers.advance(99);
    expect(fired).to.deep.equal([]);
    timers.advance(1);
    expect(fired).to.deep.equal([150]);
    // A poke every 60 ms never leaves 100 ms of quiet: the cap fires 1000 ms after each burst's first poke
    // (bursts begin at 150 and, after that firing, at the next poke, 1170).
    for (let i = 0; i < 40; i++) {
      d.poke();
      timers.advance(60);
    }
    expect(fired).to.deep.equal([150, 1150, 2170]);
    timers.advance(100);
    expect(fired).to.deep.equal([150, 1150, 2170, 2590]);
  });

  it('sets one timer for a burst of pokes in one piece of work, and fires once for it', () => {
    const fake = createFakeTimers();
    let set = 0;
    const timers = { ...fake, setTimeout: (fn: () => void, ms: number) => (set++, fake.setTimeout(fn, ms)) };
    let fired = 0;
    const d = createDebouncer({ holdOffMs: 100, maxDelayMs: 1000, timers, fire: () => fired++ });
    for (let i = 0; i < 5000; i++) d.poke();
    expect(set).to.equal(1);
    timers.advance(100);
    expect(fired).to.equal(1);
    // Cancelled, nothing fires; the next poke starts a new burst.
    d.poke();
    d.cancel();
    timers.advance(2000);
    expect(fired).to.equal(1);
    d.poke();
    timers.advance(100);
    expect(fired).to.equal(2);
  });
});

describe('backoffDelay', () => {
  it('doubles from the initial delay and stops at the cap', () => {
    expect([0, 1, 2, 3, 10, 100].map((a) => backoffDelay(a, 500, 30_000))).to.deep.equal([500, 1000, 2000, 4000, 30_000, 30_000]);
  });
});
