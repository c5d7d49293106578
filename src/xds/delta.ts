import type { DeltaDiscoveryRequest__Output } from '../generated/envoy/service/discovery/v3/DeltaDiscoveryRequest.js';
import { covers, frame, inBudget, sharedFrame, snapshotDelta, subscribed, byName, XdsStream, type Frame, type SnapshotDelta, type StreamDeps, type StreamKind, type StreamTransport, type TypeStateBase } from './stream.js';
import type { TypeUrl } from './resources.js';
import type { EncodedResource, TypeSnapshot } from './snapshot.js';
import { encodeDeltaResponse } from './wire.js';
import { decodeDeltaDiscoveryRequest } from './request.js';

interface DeltaTypeState extends TypeStateBase {
  /** Subscribed names, '*' left out: changed in place, as subscribe and unsubscribe requests arrive. */
  readonly names: Set<string>;
  /** Version the client holds per name; null once the client was told the name does not exist. */
  sent: Map<string, string | null>;
}

interface Plan {
  updates: EncodedResource[];
  removed: string[];
  /**
   * Set when the answer is exactly this snapshot delta's changes, nothing more and nothing removed: what every
   * stream that was in sync before a change is sent, so the answer is built once for all of them.
   */
  whole?: SnapshotDelta;
}

/** Per snapshot delta, the answer that carries all of its changes (see {@link Plan.whole}). */
const wholeAnswers = new WeakMap<SnapshotDelta, readonly Frame[]>();

/**
 * An incremental (Delta) stream (ADS or one type). Subscriptions and unsubscriptions apply even when the
 * request carries a stale nonce; a reconnecting client's `initial_resource_versions` are taken as what it
 * holds, so it is sent only what changed, plus `removed_resources` for what is gone. A subscribed name that
 * does not exist is reported once in `removed_resources`, so the client need not wait out its fetch timeout.
 */
export class DeltaStream extends XdsStream<DeltaDiscoveryRequest__Output, DeltaTypeState> {
  constructor(kind: StreamKind, deps: StreamDeps, transport: StreamTransport) {
    super(kind, 'delta', deps, transport);
  }

  protected newTypeState(): DeltaTypeState {
    return {
      wildcard: false, names: new Set(), force: new Set(), mustRespond: false, lastNonce: undefined, earlierNonces: [], pendingNonce: undefined,
      pendingVersion: undefined, sentVersion: undefined, ackedVersion: undefined, lastNack: undefined, sent: new Map(), synced: undefined,
    };
  }

  protected nameCount(req: DeltaDiscoveryRequest__Output): number {
    return req.resource_names_subscribe.length + req.resource_names_unsubscribe.length + Object.keys(req.initial_resource_versions).length;
  }

  protected handle(typeUrl: TypeUrl, ts: DeltaTypeState, req: DeltaDiscoveryRequest__Output, first: boolean): void {
    const sub = req.resource_names_subscribe;
    const unsub = req.resource_names_unsubscribe;
    if (sub.length + unsub.length > 0) {
      this.nameSet(typeUrl, [...sub, ...unsub]);
      ts.synced = undefined;
    }
    if (first) {
      for (const [name, version] of Object.entries(req.initial_resource_versions)) ts.sent.set(name, version);
      if (sub.length === 0) ts.wildcard = true; // legacy wildcard, as in SotW
      // A new client always gets an answer, so its initial fetch completes. A reconnecting one (it lists what it
      // holds) is sent only what differs: an empty answer would still count as an update on its side.
      ts.mustRespond = Object.keys(req.initial_resource_versions).length === 0;
    }
    for (const n of sub) {
      if (n === '*') ts.wildcard = true;
      else {
        // Re-subscribing a held name asks for it again (the client may have dropped it).
        if (!first && ts.names.has(n)) ts.force.add(n);
        ts.names.add(n);
      }
    }
    for (const n of unsub) {
      if (n === '*') {
        ts.wildcard = false;
        for (const k of [...ts.sent.keys()]) if (!ts.names.has(k)) ts.sent.delete(k);
      } else {
        ts.names.delete(n);
        ts.force.delete(n);
        if (!ts.wildcard) ts.sent.delete(n);
      }
    }
    this.classify(typeUrl, ts, req);
    if (first || sub.length > 0 || unsub.length > 0) this.schedule();
  }

  private plan(ts: DeltaTypeState, snap: TypeSnapshot, holdRemovals: boolean): Plan | undefined {
    // In sync with the previous snapshot: only the shared delta can matter.
    if (!ts.mustRespond && ts.synced) {
      const d = snapshotDelta(ts.synced, snap);
      const updates: EncodedResource[] = [];
      for (const r of d.changed) if (covers(ts, r) && ts.sent.get(r.name) !== r.version) updates.push(r);
      // Exactly the delta's changes so far; a forced resource beyond them makes the answer this stream's own.
      let whole = updates.length === d.changed.length;
      for (const n of ts.force) {
        const r = snap.resources.get(n);
        if (r && covers(ts, r) && !updates.includes(r)) {
          updates.push(r);
          whole = false;
        }
      }
      const removed = holdRemovals || d.removed.length === 0 ? [] : d.removed.filter((n) => typeof ts.sent.get(n) === 'string');
      if (updates.length === 0 && removed.length === 0) return undefined;
      return whole && removed.length === 0 ? { updates, removed, whole: d } : { updates, removed };
    }
    const updates: EncodedResource[] = [];
    for (const r of subscribed(ts, snap).values()) {
      if (ts.force.has(r.name) || ts.sent.get(r.name) !== r.version) updates.push(r);
    }
    const removed: string[] = [];
    if (!holdRemovals) for (const [n, v] of ts.sent) if (v !== null && !snap.resources.has(n)) removed.push(n);
    for (const n of ts.names) if (!snap.resources.has(n) && !ts.sent.has(n)) removed.push(n);
    if (updates.length === 0 && removed.length === 0 && !ts.mustRespond) return undefined;
    return { updates, removed };
  }

  protected decode(buf: Buffer) {
    return decodeDeltaDiscoveryRequest(buf);
  }

  protected inSync(_typeUrl: TypeUrl, ts: DeltaTypeState, snap: TypeSnapshot): boolean {
    return this.plan(ts, snap, false) === undefined;
  }

  protected respond(typeUrl: TypeUrl, ts: DeltaTypeState, snap: TypeSnapshot, holdRemovals: boolean) {
    const plan = this.plan(ts, snap, holdRemovals);
    if (!plan) return undefined;
    ts.mustRespond = false;
    for (const r of plan.updates) {
      ts.sent.set(r.name, r.version);
      ts.force.delete(r.name);
    }
    for (const n of plan.removed) {
      if (ts.names.has(n)) ts.sent.set(n, null);
      else ts.sent.delete(n);
    }
    let answer = plan.whole && wholeAnswers.get(plan.whole);
    if (!answer) {
      answer = this.answer(typeUrl, snap, plan);
      if (plan.whole) wholeAnswers.set(plan.whole, answer);
    }
    ts.sentVersion = snap.version;
    return { frames: this.stamp(ts, answer), changed: plan.updates };
  }

  /** The responses of a plan: its updates in name order, split to the size budget, its removals in the last. */
  private answer(typeUrl: TypeUrl, snap: TypeSnapshot, plan: Plan): readonly Frame[] {
    const updates = [...plan.updates].sort(byName);
    const removed = [...plan.removed].sort();
    const entries: (EncodedResource | string)[] = [...updates, ...removed];
    const parts = inBudget(entries, (e) => (typeof e === 'string' ? Buffer.byteLength(e) + 6 : e.delta.length), this.bodyBudget(typeUrl));
    return parts.map((part) => {
      const body = part.filter((e): e is EncodedResource => typeof e !== 'string');
      const gone = part.filter((e): e is string => typeof e === 'string');
      const key = `${body.map((r) => `${r.name}\t${r.version}`).join('\n')}\n-${gone.join('\n')}`;
      return sharedFrame(snap, key, () => frame((nonce) =>
        encodeDeltaResponse({ systemVersionInfo: snap.version, typeUrl, controlPlane: this.deps.controlPlane, body: body.map((r) => r.delta), removed: gone, nonce })));
    });
  }
}
