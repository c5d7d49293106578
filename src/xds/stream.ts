import type { PeerCertificate } from 'node:tls';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { checkIdentity, type IdentityRule } from './identity.js';
import type { Node__Output } from '../generated/envoy/config/core/v3/Node.js';
import type { Status__Output } from '../generated/google/rpc/Status.js';
import type { Logger } from '../observability/log.js';
import { LATENCY_BUCKETS, type Counter, type Histogram, type Metrics } from '../observability/metrics.js';
import { STATS_URL_METADATA, type NodeInfo, type SnapshotCache } from './cache.js';
import { withNonce } from './wire.js';
import { ioSliceLeft, nextTurn, turnUsed } from '../steps.js';
import { ADS_ORDER, FULL_STATE_TYPES, parseTypeUrl, TYPE_SHORT, TypeUrl } from './resources.js';
import { DEFAULT_STREAM_LIMITS } from '../config/defaults.js';
import { syncState, type SyncState } from './sync-state.js';
import { type EncodedResource, type Snapshot, type TypeSnapshot } from './snapshot.js';

/** Limits applied to every request. */
export interface StreamLimits {
  /** Most resource names (subscribe + unsubscribe + initial versions) one request may carry. */
  readonly maxNamesPerRequest: number;
  /** Most resource names one stream may hold subscribed, over all its types (Delta subscriptions add up). */
  readonly maxNamesPerStream: number;
  /** Largest response written: bigger EDS and RDS (SotW) and Delta answers go out as several responses. */
  readonly maxResponseBytes: number;
}

/** Default {@link StreamLimits}. */
export const DEFAULT_LIMITS: StreamLimits = DEFAULT_STREAM_LIMITS;

/** Longest node id or cluster accepted (Envoy's are pod and service names, far shorter). */
export const MAX_NODE_FIELD = 1024;

/** Longest client text (a type URL, a NACK message) echoed back, logged or kept for the status API. */
export const MAX_ECHO = 1024;

/** `text`, cut to {@link MAX_ECHO} characters with a note of how much was left out. */
export function clip(text: string, max = MAX_ECHO): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters)`;
}

/** What every stream needs from the server around it. */
export interface StreamDeps {
  readonly cache: SnapshotCache;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly limits: StreamLimits;
  /** Sent as `control_plane.identifier` in every response. */
  readonly controlPlane: string;
  /** When set, a node must prove its id with its client certificate (see identity.ts). */
  readonly identity?: IdentityRule;
  /** `onOpen` is called once a stream has identified its node; `onClose` once when any stream ends. */
  readonly onOpen: (s: XdsStream) => void;
  readonly onClose: (s: XdsStream) => void;
}

/**
 * The transport under one stream: the grpc-js call in production, anything in tests. `write` returns false
 * when the peer is not keeping up; the stream then stops writing until `drained()` is called.
 */
export interface StreamTransport {
  write(frame: Buffer): boolean;
  close(code: GrpcStatus, details: string): void;
  /** The client certificate the peer presented (mTLS), for node identity checks. */
  readonly peerCertificate?: PeerCertificate | undefined;
  /** The connection under the stream, held while the stream's work waits in the queue (see {@link WorkOwner}). */
  readonly owner?: WorkOwner;
}

/**
 * What queued work is for: a client connection. It is held from when a request of its streams is queued until
 * the request has been handled, and stops reading while held, so a connection that floods the port waits on its
 * own backlog and cannot queue more than one turn of work ahead of the others.
 */
export interface WorkOwner {
  hold(): void;
  release(): void;
}

/** A request refused before decoding; handed to the stream so it can close with a clear status. */
export interface MalformedRequest {
  readonly malformed: string;
  /** Default INVALID_ARGUMENT; RESOURCE_EXHAUSTED for a request over the size limit. */
  readonly code?: GrpcStatus;
}

/** A NACK as the status API shows it. */
export interface NackRecord {
  /** The version the client rejected. */
  readonly version: string;
  readonly nonce: string;
  readonly code: number;
  readonly message: string;
  readonly at: string;
}

/** One type of one stream, as the status API shows it. */
export interface TypeStatus {
  /** Subscribed names (`*` for a wildcard subscription), sorted; only some of them when the listing was capped. */
  readonly subscribed: string[];
  /** How many names are subscribed, `*` included. */
  readonly subscribedCount: number;
  readonly sentVersion?: string;
  readonly ackedVersion?: string;
  readonly pendingNonce?: string;
  readonly lastNack?: NackRecord;
}

/** `inferplane_xds_nacks_total{type}`, every type shown from the start. */
export function nacksCounter(metrics: Metrics): Counter {
  return metrics.counter('inferplane_xds_nacks_total', 'NACKs received, by type', ['type'], Object.values(TYPE_SHORT).map((type) => ({ type })));
}

/**
 * The histogram of publish → write: from a snapshot's set on the cache to the first frame of each stream's
 * response it caused, by type. Responses to a client's own request (a new stream, a new subscription) are not
 * pushes and are not observed.
 */
function pushLatency(metrics: Metrics): Histogram {
  return metrics.histogram('inferplane_xds_push_latency_seconds', 'From a snapshot\'s publication to each stream\'s write of the response it caused, by type', ['type'], LATENCY_BUCKETS);
}

/** `inferplane_xds_responses_total{type,variant}` (responses, not answers: a split answer counts each part). */
function responsesCounter(metrics: Metrics): Counter {
  return metrics.counter('inferplane_xds_responses_total', 'Responses sent, by type and variant', ['type', 'variant'], Object.values(TYPE_SHORT).flatMap((type) => ['sotw', 'delta'].map((variant) => ({ type, variant }))));
}

/** The metrics every flush touches, bound once per registry rather than looked up per stream. */
export interface FlushMetrics {
  readonly responded: Record<'sotw' | 'delta', Record<TypeUrl, (by?: number) => void>>;
  readonly pushed: Record<TypeUrl, (seconds: number) => void>;
}

const boundMetrics = new WeakMap<Metrics, FlushMetrics>();

/**
 * Registers the metrics every response touches and binds them to their labels, once per registry. The server
 * calls it when it is created: bound on a first response instead, that response pays for it (10 ms measured
 * under load), in the turn that delivers a stream its first answer.
 */
export function flushMetrics(metrics: Metrics): FlushMetrics {
  let m = boundMetrics.get(metrics);
  if (!m) {
    const byType = <T>(fn: (t: TypeUrl) => T) => Object.fromEntries(Object.values(TypeUrl).map((t) => [t, fn(t)])) as Record<TypeUrl, T>;
    const responses = responsesCounter(metrics);
    const latency = pushLatency(metrics);
    m = {
      responded: {
        sotw: byType((t) => responses.bind({ type: TYPE_SHORT[t], variant: 'sotw' })),
        delta: byType((t) => responses.bind({ type: TYPE_SHORT[t], variant: 'delta' })),
      },
      pushed: byType((t) => latency.bind({ type: TYPE_SHORT[t] })),
    };
    boundMetrics.set(metrics, m);
  }
  return m;
}

export { syncState, type SyncState };

/** Fields common to SotW and Delta requests, after decoding. */
export interface CommonRequest {
  readonly node: Node__Output | null;
  readonly type_url: string;
  readonly response_nonce: string;
  readonly error_detail: Status__Output | null;
}

/** Per-type state every stream variant keeps. */
export interface TypeStateBase {
  wildcard: boolean;
  /** Subscribed names, '*' left out (see {@link wildcard}). */
  readonly names: ReadonlySet<string>;
  /** Names to send on the next response even if the client holds their current version. */
  readonly force: Set<string>;
  /** Answer the next evaluation even when nothing changed (a first request, newly named resources). */
  mustRespond: boolean;
  lastNonce: string | undefined;
  /** Nonces of the other responses of the last answer, when it was split (see {@link inBudget}); oldest first. */
  earlierNonces: readonly string[];
  /** Nonce of the last response not yet ACKed or NACKed, and the version it carried. */
  pendingNonce: string | undefined;
  pendingVersion: string | undefined;
  sentVersion: string | undefined;
  ackedVersion: string | undefined;
  lastNack: NackRecord | undefined;
  /**
   * The type snapshot this client was last brought fully up to date with. Unchanged types keep their object
   * across snapshots, so a flush skips them by identity; any subscription change clears it.
   */
  synced: TypeSnapshot | undefined;
}

/** Which service a stream arrived on: ADS carries every type, the others one each. */
export type StreamKind = 'ads' | TypeUrl;

let nextStreamId = 1;

/**
 * Most response body one response of a split answer carries, whatever the size limit allows. A stream yields
 * the loop between the responses of an answer once the turn's slice is used, and grpc-js copies each response
 * as it is written: at 1 MiB that is a millisecond or two, so one client syncing thousands of assignments
 * (megabytes) never stops the others for long.
 */
export const PART_BYTES = 1024 * 1024;

/**
 * One response, complete with its nonce, shared as the same bytes by every stream sent it. A nonce only has to
 * tell a stream's own responses apart, so a response encoded once carries one process-wide nonce to every
 * stream: writing it to ten thousand streams copies nothing of ours (a per-stream nonce would copy each
 * response once more per stream; measured: a third of the CPU of ten clients syncing 5,000 assignments).
 */
export interface Frame {
  /** The response's bytes, encoded on first read (see {@link frame}). */
  readonly bytes: Buffer;
  readonly nonce: string;
}

let nonceSeq = 0;

/**
 * A response under a nonce no other response of this process has. It is encoded when its bytes are first
 * read, that is when the first stream writes it: the parts of a large answer (a first EDS answer to 5,000
 * names is seven 1 MiB parts) are then encoded one per turn of the loop as they go out, not all in one piece.
 */
export function frame(encode: (nonce: string) => Buffer): Frame {
  const nonce = (++nonceSeq).toString(36);
  let bytes: Buffer | undefined;
  let build: ((nonce: string) => Buffer) | undefined = encode;
  return {
    nonce,
    get bytes() {
      if (!bytes) {
        bytes = build!(nonce);
        build = undefined;
      }
      return bytes;
    },
  };
}

/** Most distinct shared frames kept per type snapshot (one per distinct subscription, typically one). */
const FRAME_CACHE_ENTRIES = 64;
const frames = new WeakMap<TypeSnapshot, Map<string, Frame | readonly Frame[]>>();

function shared<T extends Frame | readonly Frame[]>(snap: TypeSnapshot, key: string, build: () => T): T {
  let cache = frames.get(snap);
  if (!cache) frames.set(snap, (cache = new Map()));
  let found = cache.get(key) as T | undefined;
  if (!found) {
    found = build();
    if (cache.size < FRAME_CACHE_ENTRIES) cache.set(key, found);
  }
  return found;
}

/**
 * Returns the response that `key` identifies within `snap`, building it at most once: streams with the same
 * subscription share one encoding, nonce included. Entries die with their snapshot.
 */
export function sharedFrame(snap: TypeSnapshot, key: string, build: () => Frame): Frame {
  return shared(snap, `1\n${key}`, build);
}

/**
 * Like {@link sharedFrame}, for a whole answer of one or more responses: a stream sending everything its
 * subscription covers skips sorting, splitting and keying thousands of resources when another stream with the
 * same subscription already did.
 */
export function sharedFrames(snap: TypeSnapshot, key: string, build: () => readonly Frame[]): readonly Frame[] {
  return shared(snap, `n\n${key}`, build);
}

const flushes: (() => void)[] = [];
let flushHead = 0;
let flushing = false;

/**
 * Queues a stream's flush (or a request that arrived past the turn's slice). They run first come, first
 * served, within the slice of each turn of the event loop that long work shares (src/steps.ts): a change
 * reaching thousands of streams, or a few streams each taking megabytes, never holds the loop much longer than
 * a slice. A request's connection is held meanwhile: it reads no more while one of its requests waits, so the
 * queue holds about one request per connection and a newcomer waits behind one of each, not behind a flood's
 * backlog.
 */
function enqueueFlush(flush: () => void, owner: WorkOwner | undefined): void {
  if (owner) {
    owner.hold();
    flushes.push(() => {
      try {
        flush();
      } finally {
        owner.release();
      }
    });
  } else {
    flushes.push(flush);
  }
  if (flushing) return;
  flushing = true;
  void drainFlushes();
}

async function drainFlushes(): Promise<void> {
  while (flushHead < flushes.length) {
    await nextTurn();
    do {
      const flush = flushes[flushHead]!;
      flushes[flushHead++] = undefined as never;
      flush();
    } while (flushHead < flushes.length && !turnUsed());
  }
  flushes.length = flushHead = 0;
  flushing = false;
}

/**
 * What SotW and Delta streams share: node and type checks, NACK bookkeeping, per-stream flush scheduling with
 * ADS make-before-break ordering, cluster removal held back until routes no longer need the cluster, EDS
 * resent after clusters change, and backpressure (a slow peer gets the latest state, not a queue of every
 * intermediate one).
 */
export abstract class XdsStream<Req extends CommonRequest = CommonRequest, TS extends TypeStateBase = TypeStateBase> {
  /** Unique within this process; used by the status API. */
  readonly id = nextStreamId++;
  readonly connectedSince = new Date();
  node: NodeInfo | undefined;
  group: string | undefined;
  protected snapshot: Snapshot | undefined;
  protected readonly types = new Map<TypeUrl, TS>();
  private unwatch: (() => void) | undefined;
  private writable = true;
  private scheduled = false;
  private closed = false;
  /** Requests waiting in the flush queue: later ones queue behind them, so each stream's stay in order. */
  private queued = 0;
  /** The last answer, when some of its responses are not yet written (see {@link writeAnswer}). */
  private backlog: { readonly frames: readonly Frame[]; readonly next: number } | undefined;

  constructor(
    readonly kind: StreamKind,
    readonly variant: 'sotw' | 'delta',
    protected readonly deps: StreamDeps,
    private readonly transport: StreamTransport,
  ) {}

  /**
   * Handles one request from the client: at once while the turn's slice lasts, else in a later turn. A fleet
   * reconnecting sends thousands of first requests in one poll, each naming up to thousands of resources. Given
   * its bytes, the request is decoded only when it is handled: one that waits costs nothing now.
   */
  receive(req: Req | MalformedRequest | Buffer): void {
    if (this.closed) return;
    if (this.queued > 0 || !ioSliceLeft()) {
      this.queued++;
      enqueueFlush(() => {
        this.queued--;
        this.handleRequest(req);
      }, this.transport.owner);
      return;
    }
    this.handleRequest(req);
  }

  private handleRequest(received: Req | MalformedRequest | Buffer): void {
    if (this.closed) return;
    const req = Buffer.isBuffer(received) ? this.decode(received) : received;
    if ('malformed' in req) return this.fail(req.code ?? GrpcStatus.INVALID_ARGUMENT, req.code === GrpcStatus.RESOURCE_EXHAUSTED ? req.malformed : `malformed request: ${req.malformed}`);
    if (!this.node) {
      // The node is only guaranteed on a stream's first request (xDS protocol, "Basic protocol overview").
      if (!req.node || req.node.id === '') {
        return this.fail(GrpcStatus.INVALID_ARGUMENT, 'the first request on a stream must carry node with a non-empty id');
      }
      for (const field of ['id', 'cluster'] as const) {
        if (req.node[field].length > MAX_NODE_FIELD) return this.fail(GrpcStatus.INVALID_ARGUMENT, `node.${field} is ${req.node[field].length} characters; the limit is ${MAX_NODE_FIELD}`);
      }
      if (this.deps.identity) {
        const denied = checkIdentity(this.deps.identity, this.transport.peerCertificate, req.node);
        if (denied) {
          this.deps.metrics.counter('inferplane_identity_rejections_total', 'Streams refused because the client certificate does not prove the node identity, by service', ['service']).inc({ service: 'xds' });
          return this.fail(GrpcStatus.PERMISSION_DENIED, denied);
        }
      }
      this.open(req.node);
    }
    const typeUrl = this.resolveType(req.type_url);
    if (!typeUrl) return;
    const nameCount = this.nameCount(req);
    if (nameCount > this.deps.limits.maxNamesPerRequest) {
      return this.fail(GrpcStatus.INVALID_ARGUMENT, `request for ${typeUrl} names ${nameCount} resources; the limit is ${this.deps.limits.maxNamesPerRequest}`);
    }
    let ts = this.types.get(typeUrl);
    const first = !ts;
    if (!ts) this.types.set(typeUrl, (ts = this.newTypeState()));
    this.handle(typeUrl, ts, req, first);
    // Subscriptions accumulate over Delta requests: bound what one stream can make this process hold.
    let held = 0;
    for (const t of this.types.values()) held += t.names.size;
    if (held > this.deps.limits.maxNamesPerStream) {
      this.fail(GrpcStatus.RESOURCE_EXHAUSTED, `the stream subscribes to ${held} resource names; the limit is ${this.deps.limits.maxNamesPerStream} (--max-names-per-stream)`);
    }
  }

  /** The transport can take more writes again. */
  drained(): void {
    this.writable = true;
    this.schedule();
  }

  /** The client went away or the call ended: release everything. */
  ended(): void {
    if (this.closed) return;
    this.closed = true;
    this.unwatch?.();
    this.deps.onClose(this);
  }

  /** Ends the stream with a status (used on shutdown and on protocol errors). */
  fail(code: GrpcStatus, details: string): void {
    if (this.closed) return;
    this.deps.log.warn('closing xDS stream', { stream: this.id, node: this.node?.id, code: GrpcStatus[code], details });
    this.transport.close(code, details);
    this.ended();
  }

  /**
   * Per-type state for the status API, with at most `maxNames` subscribed names per type (a stream may hold
   * 100,000; an unbounded listing of thousands of streams would block the process while it is serialised).
   */
  typeStatus(maxNames = Infinity): Record<string, TypeStatus> {
    const out: Record<string, TypeStatus> = {};
    for (const t of ADS_ORDER) {
      const ts = this.types.get(t);
      if (!ts) continue;
      const names: string[] = ts.wildcard && maxNames > 0 ? ['*'] : [];
      for (const n of ts.names) {
        if (names.length >= maxNames) break;
        names.push(n);
      }
      out[TYPE_SHORT[t]] = {
        subscribed: names.sort(),
        subscribedCount: ts.names.size + (ts.wildcard ? 1 : 0),
        ...(ts.sentVersion !== undefined && { sentVersion: ts.sentVersion }),
        ...(ts.ackedVersion !== undefined && { ackedVersion: ts.ackedVersion }),
        ...(ts.pendingNonce !== undefined && { pendingNonce: ts.pendingNonce }),
        ...(ts.lastNack && { lastNack: ts.lastNack }),
      };
    }
    return out;
  }

  /** Each subscribed type's {@link syncState}, as [short type name, state]: what the sync-state gauge counts, without listing names. */
  syncStates(): [string, SyncState][] {
    const out: [string, SyncState][] = [];
    for (const t of ADS_ORDER) {
      const ts = this.types.get(t);
      if (ts) out.push([TYPE_SHORT[t], syncState(ts)]);
    }
    return out;
  }

  protected abstract newTypeState(): TS;
  protected abstract nameCount(req: Req): number;
  /** Applies one validated request to its type's state; schedules a flush when something may need sending. */
  /** Decodes a request's bytes, or says why they cannot be. */
  protected abstract decode(buf: Buffer): Req | MalformedRequest;
  protected abstract handle(typeUrl: TypeUrl, ts: TS, req: Req, first: boolean): void;
  /**
   * Builds the next response for a type and records it as sent, or returns undefined when the client is in
   * sync. `changed` lists resources whose version the client did not hold. With `holdRemovals`, resources the
   * client holds that left the snapshot are kept (SotW) or not yet removed (Delta).
   */
  protected abstract respond(typeUrl: TypeUrl, ts: TS, snap: TypeSnapshot, holdRemovals: boolean): { frames: readonly Frame[]; changed: readonly EncodedResource[] } | undefined;
  /** True when the type's client state matches the snapshot (nothing to send), without changing anything. */
  protected abstract inSync(typeUrl: TypeUrl, ts: TS, snap: TypeSnapshot): boolean;

  /**
   * Records the nonces of an answer about to be sent: the last is the one an ACK must carry, the earlier ones
   * can still be NACKed. A shared response this stream was sent just before (the same content, again) gets a
   * fresh nonce in a copy of its own, so a late reply to the earlier one is never taken for a reply to this.
   */
  protected stamp(ts: TS, answer: readonly Frame[]): readonly Frame[] {
    const only = answer.length === 1 ? answer[0]! : undefined;
    if (only && only.nonce !== ts.lastNonce && ts.earlierNonces.length === 0) {
      ts.lastNonce = only.nonce;
      return answer;
    }
    const recent = (n: string) => n === ts.lastNonce || ts.earlierNonces.includes(n);
    const out = answer.some((f) => recent(f.nonce)) ? answer.map((f) => (recent(f.nonce) ? frame((n) => withNonce(f.bytes, f.nonce, n)) : f)) : answer;
    ts.earlierNonces = out.slice(0, -1).map((f) => f.nonce);
    ts.lastNonce = out[out.length - 1]?.nonce;
    return out;
  }

  /**
   * Bytes of response body one response of a split answer may carry: what the limit leaves, given the fields
   * around it, and at most {@link PART_BYTES}.
   */
  protected bodyBudget(typeUrl: TypeUrl): number {
    return Math.min(PART_BYTES, this.deps.limits.maxResponseBytes - 256 - typeUrl.length - Buffer.byteLength(this.deps.controlPlane));
  }

  /**
   * Classifies a request by its nonce. 'stale': the nonce is not the latest sent for this type, so the request
   * answers an older response (SotW ignores it). 'nack' and 'ack' answer the latest response.
   */
  protected classify(typeUrl: TypeUrl, ts: TS, req: Req): 'initial' | 'stale' | 'ack' | 'nack' {
    if (req.response_nonce === '') return req.error_detail ? 'nack' : 'initial';
    // Part of a split answer may be rejected while the rest is accepted: the rejection still counts.
    if (req.response_nonce !== ts.lastNonce && !(req.error_detail && ts.earlierNonces.includes(req.response_nonce))) return 'stale';
    if (req.error_detail) {
      const nack: NackRecord = {
        version: ts.pendingVersion ?? ts.sentVersion ?? '',
        nonce: req.response_nonce,
        code: req.error_detail.code,
        message: clip(req.error_detail.message),
        at: new Date().toISOString(),
      };
      ts.lastNack = nack;
      ts.pendingNonce = ts.pendingVersion = undefined;
      // Never answer a NACK by resending: the stream keeps the rejected content as "sent", so only new
      // config goes out (go-control-plane resends forever: envoyproxy/go-control-plane#962).
      nacksCounter(this.deps.metrics).inc({ type: TYPE_SHORT[typeUrl] });
      this.deps.log.warn('NACK', { node: this.node?.id, type: TYPE_SHORT[typeUrl], version: nack.version, code: nack.code, message: nack.message });
      return 'nack';
    }
    ts.ackedVersion = ts.pendingVersion ?? ts.ackedVersion;
    ts.pendingNonce = ts.pendingVersion = undefined;
    // Routes settling may release clusters held back for make-before-break.
    if (this.kind === 'ads' && (typeUrl === TypeUrl.Listener || typeUrl === TypeUrl.Route)) this.schedule();
    return 'ack';
  }

  protected schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    // Not held: a flush is the server's own work (a change reaching every stream), not the client's asking.
    enqueueFlush(() => {
      this.scheduled = false;
      this.flush();
    }, undefined);
  }

  private flush(): void {
    if (this.closed || !this.writable || !this.snapshot) return;
    // The rest of an answer goes before anything newer: the client sees each version whole and in order.
    const rest = this.backlog;
    if (rest) {
      this.backlog = undefined;
      if (!this.writeAnswer(rest.frames, rest.next)) return;
    }
    const snapshot = this.snapshot;
    const order = this.kind === 'ads' ? ADS_ORDER : [this.kind];
    for (const typeUrl of order) {
      const ts = this.types.get(typeUrl);
      if (!ts) continue;
      const snap = snapshot.types[typeUrl];
      if (ts.synced === snap && !ts.mustRespond && ts.force.size === 0) continue;
      const pushed = ts.synced !== undefined && ts.synced !== snap && !ts.mustRespond;
      const holdRemovals = typeUrl === TypeUrl.Cluster && this.kind === 'ads' && !this.routesSettled(snapshot);
      const out = this.respond(typeUrl, ts, snap, holdRemovals);
      // While removals are held the client is not up to date, whatever was sent.
      if (!holdRemovals) ts.synced = snap;
      if (!out) continue;
      ts.pendingNonce = ts.lastNonce;
      ts.pendingVersion = ts.sentVersion;
      const m = flushMetrics(this.deps.metrics);
      m.responded[this.variant][typeUrl](out.frames.length);
      if (typeUrl === TypeUrl.Cluster) this.forceEndpoints(out.changed);
      if (pushed) {
        const at = this.deps.cache.publishedAt(snapshot);
        if (at !== undefined) m.pushed[typeUrl]((performance.now() - at) / 1000);
      }
      if (!this.writeAnswer(out.frames, 0)) return;
    }
  }

  /**
   * Writes an answer's responses from `from` on: while the transport takes them, and past the first only while the turn's slice lasts (the rest follow in a later turn, so one
   * stream's megabytes never hold the loop). True when all are written and more may be written.
   */
  private writeAnswer(frames: readonly Frame[], from: number): boolean {
    for (let i = from; i < frames.length; i++) {
      if (i > from && turnUsed()) {
        this.backlog = { frames, next: i };
        this.schedule();
        return false;
      }
      if (!this.transport.write(frames[i]!.bytes)) {
        if (i + 1 < frames.length) this.backlog = { frames, next: i + 1 };
        this.writable = false;
        return false;
      }
    }
    return true;
  }

  /**
   * A new or changed cluster warms until it receives its assignment, even an unchanged one, and Envoy does not
   * always ask again (envoyproxy/go-control-plane#245, envoyproxy/envoy#13009): send the assignments of the
   * clusters that just changed.
   */
  private forceEndpoints(changed: readonly EncodedResource[]): void {
    const eds = this.types.get(TypeUrl.Endpoint);
    if (!eds) return;
    for (const r of changed) eds.force.add(r.name);
  }

  /**
   * Whether this ADS stream's listeners and routes are current and acknowledged, so no route can still point at
   * a cluster the new snapshot removed (make-before-break: clusters go last).
   */
  private routesSettled(snapshot: Snapshot): boolean {
    for (const t of [TypeUrl.Listener, TypeUrl.Route]) {
      const ts = this.types.get(t);
      if (ts && (ts.pendingNonce !== undefined || (ts.synced !== snapshot.types[t] && !this.inSync(t, ts, snapshot.types[t])))) return false;
    }
    return true;
  }

  private open(node: Node__Output): void {
    const statsUrl = node.metadata?.fields?.[STATS_URL_METADATA]?.stringValue;
    const info: NodeInfo = {
      id: node.id,
      cluster: node.cluster,
      userAgent: [node.user_agent_name, node.user_agent_version].filter(Boolean).join('/'),
      ...(statsUrl && { statsUrl }),
      ...(node.locality?.zone && { zone: node.locality.zone }),
    };
    this.node = info;
    this.group = this.deps.cache.groupOf(info);
    this.snapshot = this.deps.cache.get(this.group);
    this.unwatch = this.deps.cache.watch(this.group, (s) => {
      this.snapshot = s;
      this.schedule();
    });
    this.deps.onOpen(this);
  }

  private resolveType(url: string): TypeUrl | undefined {
    if (this.kind !== 'ads') {
      if (url === '' || url === this.kind) return this.kind;
      this.fail(GrpcStatus.INVALID_ARGUMENT, `type_url "${clip(url, 200)}" does not belong on the ${TYPE_SHORT[this.kind].toUpperCase()} service (expected ${this.kind})`);
      return undefined;
    }
    const t = parseTypeUrl(url);
    if (!t) this.fail(GrpcStatus.INVALID_ARGUMENT, url === '' ? 'an ADS request must carry type_url' : `unknown or unserved type_url "${clip(url, 200)}" (served: ${Object.values(TypeUrl).join(', ')})`);
    return t;
  }

  /** Returns the names as a set, logging when the request repeated some. */
  protected nameSet(typeUrl: TypeUrl, names: readonly string[]): Set<string> {
    const set = new Set(names);
    if (set.size !== names.length) this.warnDuplicates(typeUrl);
    return set;
  }

  /** Logs that a request named some resource more than once. */
  protected warnDuplicates(typeUrl: TypeUrl): void {
    this.deps.log.warn('request names a resource more than once; duplicates ignored', { node: this.node?.id, type: TYPE_SHORT[typeUrl] });
  }
}

/** True for types whose SotW responses must list every subscribed resource. */
export function isFullState(typeUrl: TypeUrl): boolean {
  return FULL_STATE_TYPES.has(typeUrl);
}

/**
 * Resources a subscription covers in a snapshot: wildcard-visible ones if wildcard, plus every named one. In
 * name order when the subscription is a wildcard or names a good part of the snapshot (read off the snapshot,
 * which is in name order), else in the order the names were given.
 */
export function subscribed(ts: TypeStateBase, snap: TypeSnapshot): Map<string, EncodedResource> {
  const out = new Map<string, EncodedResource>();
  if (ts.wildcard || ts.names.size * 4 >= snap.resources.size) {
    for (const [name, r] of snap.resources) if (covers(ts, r)) out.set(name, r);
    return out;
  }
  for (const name of ts.names) {
    const r = snap.resources.get(name);
    if (r) out.set(name, r);
  }
  return out;
}

/** Sorts resources by name, for deterministic responses. */
export function byName(a: EncodedResource, b: EncodedResource): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** What changed from one type snapshot to the next: computed once, shared by every stream. */
export interface SnapshotDelta {
  /** Resources new or changed in `to`. */
  readonly changed: readonly EncodedResource[];
  /** Names in `from` that `to` no longer has. */
  readonly removed: readonly string[];
}

/**
 * Per new type snapshot, its difference from the one before. `from` is held weakly: a strong reference would
 * chain every snapshot to its predecessor, keeping every past configuration alive for as long as the current one.
 */
const deltas = new WeakMap<TypeSnapshot, { from: WeakRef<TypeSnapshot>; delta: SnapshotDelta }>();

/**
 * The difference between two type snapshots. Streams that were in sync with `from` answer a change by looking
 * only at what changed, instead of walking their whole subscription: with 1,000 subscribed assignments and
 * 1,000 streams that is the difference between a thousand and a million map look-ups per change.
 */
export function snapshotDelta(from: TypeSnapshot, to: TypeSnapshot): SnapshotDelta {
  const memo = deltas.get(to);
  if (memo?.from.deref() === from) return memo.delta;
  const changed: EncodedResource[] = [];
  for (const [name, r] of to.resources) if (from.resources.get(name) !== r) changed.push(r);
  const removed: string[] = [];
  for (const name of from.resources.keys()) if (!to.resources.has(name)) removed.push(name);
  const delta = { changed, removed };
  deltas.set(to, { from: new WeakRef(from), delta });
  return delta;
}

/**
 * Splits `items`, in order, into runs whose sizes add up to at most `budget` each (an item larger than the
 * budget alone in its run): the parts of an answer too big for one response. The xDS protocol lets EDS and
 * RDS SotW responses, and every Delta response, carry any subset of the resources.
 */
export function inBudget<T>(items: readonly T[], size: (item: T) => number, budget: number): T[][] {
  const runs: T[][] = [[]];
  let used = 0;
  for (const item of items) {
    const n = size(item);
    if (used + n > budget && runs[runs.length - 1]!.length > 0) {
      runs.push([]);
      used = 0;
    }
    runs[runs.length - 1]!.push(item);
    used += n;
  }
  return runs;
}

/** Whether a subscription covers a resource. */
export function covers(ts: TypeStateBase, r: EncodedResource): boolean {
  return (ts.wildcard && r.wildcard) || ts.names.has(r.name);
}
