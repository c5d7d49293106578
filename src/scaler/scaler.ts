import type { Logger } from '../observability/log.js';
import { LATENCY_BUCKETS, type Metrics } from '../observability/metrics.js';
import type { Timers } from '../sources/kubernetes/timers.js';
import { decide, MODES, type Decision, type DecisionState, type FleetSample, type Mode, type QueueReading, type Reason } from './decide.js';
import type { LeaderElector } from './lease.js';
import type { PolicySource, PolicyStatus } from './policy-source.js';
import type { ServiceScaling } from './policy.js';
import { STATS_ADDRESS_ANNOTATION, type StatsRelay } from './relay.js';
import { deletionCosts } from './deletion-cost.js';
import { isReplicaError, ReplicaError, type ReplicaReading, type ReplicaStore } from './replica-store.js';
import type { ExcludedReporter, FleetStats } from './stats.js';

/** Why nothing could be decided for a service this tick (the decision function was not reached). */
export type ReadProblem = 'deployment-missing' | 'api-error';

/** One decision as the scaler made and carried it out: what `/status/scaler` lists and the log records. */
export interface DecisionRecord {
  readonly at: string;
  readonly service: string;
  readonly deployment: string;
  /** The replica count decided (the current one for holds). */
  readonly replicas: number | null;
  readonly action: Decision['action'];
  readonly reason: Reason | ReadProblem;
  readonly mode: Decision['mode'] | null;
  /**
   * `written`: the scale subresource was updated; `unchanged`: nothing to write; `dry-run`: would have been
   * written; `conflict`: the Deployment kept changing under us (409 each try), retried next tick; `error`: the
   * API refused (see `error`).
   */
  readonly outcome: 'written' | 'unchanged' | 'dry-run' | 'conflict' | 'error';
  readonly error?: string;
  readonly inputs: Decision['inputs'] | null;
  /**
   * For a scale-down with `scaleDownIdlestFirst`: the pods whose deletion cost was set before the write (by
   * name, to the requests in flight on each), and what failed (the scale-down goes ahead without them).
   */
  readonly deletionCosts?: { readonly set: Readonly<Record<string, number>>; readonly unchanged: number; readonly error?: string };
}

/** One point of a service's replica timeline (one per decision round), for the status page's chart. */
export interface TimelinePoint {
  readonly at: string;
  /** What the round decided (the current count for holds); null when the Deployment could not be read. */
  readonly desired: number | null;
  readonly current: number | null;
  readonly ready: number | null;
  /** In-flight requests over the stable window, as the decision saw them. */
  readonly demand: number | null;
  /** Pods that demand needs at the mode's target (before the policy's bounds and steps); null without data. */
  readonly wanted: number | null;
  readonly mode: Decision['mode'] | null;
}

/** What a shadow policy would have done in one round (never applied). */
export interface ShadowDecision {
  readonly at: string;
  readonly replicas: number;
  readonly action: Decision['action'];
  readonly reason: Reason;
  readonly mode: Decision['mode'];
  readonly inputs: Decision['inputs'];
}

/**
 * A service's mode as the data plane follows it (its playbook), and why: `scaler` (the decision's pressure
 * logic), `policy` (the policy's `mode`), `operator` (forced through the admin endpoint), or `leader` (this
 * replica stands by and follows what the acting scaler published on the Lease).
 */
export interface ModeState {
  readonly mode: Mode;
  readonly reason: 'scaler' | 'policy' | 'operator' | 'leader';
  readonly since: string;
  /** When an operator's forced mode ends by itself (null: until set back to auto). */
  readonly until: string | null;
}

/** The Lease annotation on which the acting scaler publishes every service's mode, for the standby replicas. */
export const MODES_ANNOTATION = 'inferplane.io/modes';

/** Why an operator's mode could not be forced here: `standby` (ask the leader) or `bad-request`. */
export class ForceError extends Error {
  constructor(readonly kind: 'standby' | 'bad-request', message: string) {
    super(message);
  }
}

/** Options of {@link createScaler}. */
export interface ScalerOptions {
  /**
   * A candidate policy run beside the active one on the same stats and the same Deployment readings: its
   * decisions are logged, counted and shown, never written (`--shadow-policy`). Services it lists that the
   * active policy does not scale get no shadow decisions (there is no reading to decide on).
   */
  readonly shadow?: PolicySource;
  /** The pods' queues, read before deciding a service whose policy (or shadow policy) has a `queueSignal`. */
  readonly queue?: (service: string) => Promise<QueueReading | undefined>;
  /** Requests in flight on each pod of a service, by pod IP: the deletion costs set before a scale-down. */
  readonly podLoad?: (service: string) => Promise<ReadonlyMap<string, number>>;
  readonly stats: FleetStats;
  readonly policy: PolicySource;
  readonly store: ReplicaStore;
  /** Decide and log, never write. */
  readonly dryRun: boolean;
  /** Only the leader reads replicas, decides and writes; without one, this process is the only scaler. */
  readonly election?: LeaderElector;
  /** With an election: how followers pass their Envoys' sums to the leader (its address from the Lease). */
  readonly relay?: StatsRelay;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly timers: Timers;
  /** Decision period. Default 1 s. */
  readonly intervalMs?: number;
  /** Decisions kept for `/status/scaler`. Default 200. */
  readonly keepDecisions?: number;
  /**
   * Called with every service's mode whenever any changes (the data plane's playbooks follow it). Services
   * not listed are in normal mode.
   */
  readonly onModes?: (modes: ReadonlyMap<string, ModeState>) => void;
  /** Services served here, which an operator may force a mode on though the policy does not scale them. */
  readonly known?: (service: string) => boolean;
  /** Reads and writes per service per tick when the Deployment keeps changing under us (409). Default 3. */
  readonly maxAttempts?: number;
  /** An API call not answered within this long fails the round for that service. Default 5 s. */
  readonly apiTimeoutMs?: number;
}

/** What `/status/scaler` shows. */
export interface ScalerStatus {
  readonly role: 'leader' | 'standby' | 'single';
  readonly leader: string | null;
  readonly dryRun: boolean;
  readonly replicasFrom: ReplicaStore['kind'];
  readonly policy: PolicyStatus;
  /** The shadow policy (`--shadow-policy`), when one runs. */
  readonly shadowPolicy: PolicyStatus | null;
  /** Services in surge or emergency mode (and any an operator forced), with why and since when. */
  readonly modes: Readonly<Record<string, ModeState>>;
  readonly services: Record<string, {
    readonly deployment: string;
    readonly current: number | null;
    readonly ready: number | null;
    readonly externalChangeAt: string | null;
    readonly last: DecisionRecord | null;
    /** Reporters left out of the latest fleet total (silent longer than the policy's maxSampleAge), and why. */
    readonly excludedReporters: readonly ExcludedReporter[];
    /** What the shadow policy would have done in the latest round; null without one (or for this service). */
    readonly shadow: ShadowDecision | null;
    /** Only when asked for (see {@link ScalerStatusFilter.timeline}). */
    readonly timeline?: readonly TimelinePoint[];
  }>;
  /** Newest first. */
  readonly decisions: readonly DecisionRecord[];
}

/** What {@link Scaler.status} narrows to. */
export interface ScalerStatusFilter {
  readonly service?: string;
  /** Most decisions listed. */
  readonly limit?: number;
  /** Adds each service's last `timeline` points (oldest first; at most {@link TIMELINE_POINTS}). */
  readonly timeline?: number;
}

/** Timeline points kept per service: ten minutes at the default 1 s interval. */
export const TIMELINE_POINTS = 600;

/** The running decision loop. */
export interface Scaler {
  start(): void;
  stop(): Promise<void>;
  /** Runs one decision round now (the loop calls it every interval); resolves when it is done. */
  tick(): Promise<void>;
  status(filter?: ScalerStatusFilter): ScalerStatus;
  /**
   * Forces a service's mode (scaling targets and data-plane playbook alike) until `auto` is set again or, with
   * `forMs`, until then. Only where the scaler acts (the leader, or a single replica): a standby throws a
   * {@link ForceError} naming the leader. The service must be scaled by the policy or served (`known`).
   */
  force(service: string, mode: Mode | 'auto', forMs?: number): Promise<ModeState | null>;
}

interface ServiceState {
  history: FleetSample[];
  timeline: TimelinePoint[];
  shadowState?: DecisionState;
  shadow?: ShadowDecision;
  state?: DecisionState;
  excluded?: readonly ExcludedReporter[];
  /** spec.replicas as last read, and as last written by us: a read matching neither was changed by someone else. */
  seen?: number;
  written?: number;
  externalChangeAt?: number;
  ready?: number;
  last?: DecisionRecord;
}

/**
 * Every interval, for each service in the policy: samples the fleet's active requests, and (as leader, or as
 * the only scaler) reads the Deployment, runs {@link decide}, and writes the new count through the scale
 * subresource with the read's resourceVersion (on 409: read and decide again, up to `maxAttempts`). A count
 * changed by anyone else starts the policy's cool-off, during which it stands. Every decision is logged
 * (actions and changes of reason at info, repeated holds at debug), counted, and kept for the status page.
 */
export function createScaler(o: ScalerOptions): Scaler {
  const intervalMs = o.intervalMs ?? 1_000;
  const keep = o.keepDecisions ?? 200;
  const maxAttempts = o.maxAttempts ?? 3;
  const apiTimeoutMs = o.apiTimeoutMs ?? 5_000;
  // A hung API call must not stall every later round; the call itself may still complete.
  const timed = <T>(p: Promise<T>, what: string): Promise<T> => {
    let timer: unknown;
    return Promise.race([
      p,
      new Promise<never>((_, reject) => (timer = o.timers.setTimeout(() => reject(new ReplicaError('api', `${what}: no answer within ${apiTimeoutMs} ms`)), apiTimeoutMs))),
    ]).finally(() => o.timers.clearTimeout(timer));
  };
  const byService = new Map<string, ServiceState>();
  const decisions: DecisionRecord[] = [];
  let timer: unknown;
  let running: Promise<void> | undefined;
  let stopped = true;
  let wasLeading = false;
  const overrides = new Map<string, { mode: Mode; until: number | null }>();
  let modes = new Map<string, ModeState>();
  const modeChanges = o.metrics.counter('inferplane_playbook_mode_changes_total', 'Changes of a service\'s mode (and so its data-plane playbook), by service, new mode and reason', ['service', 'mode', 'reason']);

  const decided = o.metrics.counter('inferplane_scaler_decisions_total', 'Scaling decisions, by service, action and reason', ['service', 'action', 'reason']);
  const requests = o.metrics.counter('inferplane_scaler_scale_requests_total', 'Writes to a Deployment\'s scale subresource, by service and outcome', ['service', 'outcome']);
  const decisionSeconds = o.metrics.histogram('inferplane_scaler_decision_duration_seconds', 'Time to decide one service: reading its Deployment (the API call) and deciding', ['service'], LATENCY_BUCKETS);
  const writeSeconds = o.metrics.histogram('inferplane_scaler_scale_write_duration_seconds', 'Time of one write to a Deployment\'s scale subresource, by service and outcome', ['service', 'outcome'], LATENCY_BUCKETS);
  const costWrites = o.metrics.counter('inferplane_scaler_deletion_cost_writes_total', 'Pod deletion costs set before a scale-down, by service and outcome (set, error)', ['service', 'outcome']);
  const shadowDecided = o.shadow && o.metrics.counter('inferplane_scaler_shadow_decisions_total', 'Decisions of the shadow policy (never applied), by service, action and reason', ['service', 'action', 'reason']);
  if (o.shadow) o.metrics.gauge('inferplane_scaler_shadow_desired_replicas', 'Replicas the shadow policy\'s latest decision would have asked for (never applied)', ['service'], () => [...byService].flatMap(([service, st]) => (st.shadow ? [[{ service }, st.shadow.replicas] as const] : [])));
  const perService = (read: (s: ServiceState) => number | undefined) => () =>
    [...byService].flatMap(([service, s]) => (read(s) === undefined ? [] : [[{ service }, read(s)!] as const]));
  o.metrics.gauge('inferplane_scaler_leader', '1 while this replica is the acting scaler', [], () => (acting() ? 1 : 0));
  o.metrics.gauge('inferplane_scaler_desired_replicas', 'Replicas the latest decision asked for', ['service'], perService((s) => s.last?.replicas ?? undefined));
  o.metrics.gauge('inferplane_scaler_current_replicas', 'spec.replicas as last read', ['service'], perService((s) => s.seen));
  o.metrics.gauge('inferplane_scaler_ready_replicas', 'Ready replicas as last read', ['service'], perService((s) => s.ready));
  o.metrics.gauge('inferplane_scaler_mode', '1 for the playbook each service is in (normal, surge, emergency)', ['service', 'mode'], () =>
    [...byService].flatMap(([service, s]) => (s.state ? MODES.map((m) => [{ service, mode: m }, s.state!.mode === m ? 1 : 0] as const) : [])));

  const acting = () => (o.election ? o.election.isLeader() : true);
  const stateOf = (service: string) => {
    let s = byService.get(service);
    if (!s) byService.set(service, (s = { history: [], timeline: [] }));
    return s;
  };

  const record = (svc: ServiceScaling, s: ServiceState, r: Omit<DecisionRecord, 'at' | 'service' | 'deployment'>) => {
    const full: DecisionRecord = { at: new Date(o.timers.now()).toISOString(), service: svc.service, deployment: `${svc.deployment.namespace}/${svc.deployment.name}`, ...r };
    const changed = r.action !== 'hold' || r.reason !== s.last?.reason || r.outcome !== s.last?.outcome;
    s.last = full;
    decisions.push(full);
    if (decisions.length > keep) decisions.splice(0, decisions.length - keep);
    decided.inc({ service: svc.service, action: r.action, reason: r.reason });
    s.timeline.push({ at: full.at, desired: r.replicas, current: s.seen ?? null, ready: s.ready ?? null, demand: r.inputs?.stableDemand ?? null, wanted: r.inputs?.wanted ?? null, mode: r.mode });
    if (s.timeline.length > TIMELINE_POINTS) s.timeline.splice(0, s.timeline.length - TIMELINE_POINTS);
    const fields = { ...full, dryRun: o.dryRun };
    if (r.outcome === 'error' || r.outcome === 'conflict') o.log.warn('scaling decision not carried out', fields);
    else if (changed) o.log.info('scaling decision', fields);
    else o.log.debug('scaling decision', fields);
  };

  async function decideOne(svc: ServiceScaling, s: ServiceState, now: number): Promise<void> {
    const forced = overrides.get(svc.service);
    const policy = forced ? { ...svc.policy, forcedMode: forced.mode } : svc.policy;
    for (let attempt = 1; ; attempt++) {
      const started = performance.now();
      let reading;
      try {
        reading = await timed(o.store.read(svc.deployment, svc.service), `reading ${svc.deployment.namespace}/${svc.deployment.name}`);
      } catch (e) {
        return problem(svc, s, e);
      }
      if (s.seen !== undefined && reading.desired !== s.seen && reading.desired !== s.written) {
        s.externalChangeAt = now;
        o.log.warn('replicas changed outside the scaler; holding them for the cool-off', { service: svc.service, from: s.seen, to: reading.desired, coolOffMs: policy.externalCoolOffMs });
      }
      s.seen = reading.desired;
      s.ready = reading.ready;
      const wantsQueue = policy.queueSignal !== null || o.shadow?.current()?.find((x) => x.service === svc.service)?.policy.queueSignal;
      const queue = wantsQueue && o.queue ? await timed(o.queue(svc.service), `reading the queues of ${svc.service}'s pods`).catch(() => undefined) : undefined;
      const d = decide({ history: s.history, replicas: reading, policy, now, ...(s.state && { state: s.state }), ...(s.externalChangeAt !== undefined && { externalChangeAt: s.externalChangeAt }), ...(queue && { queue }) });
      const base = { replicas: d.replicas, action: d.action, reason: d.reason, mode: d.mode, inputs: d.inputs } as const;
      if (attempt === 1) shadowDecide(svc, s, reading, now, queue);
      decisionSeconds.observe({ service: svc.service }, (performance.now() - started) / 1000);
      if (d.replicas === reading.desired || o.dryRun || !o.store.write) {
        s.state = d.state;
        return record(svc, s, { ...base, outcome: d.replicas === reading.desired ? 'unchanged' : 'dry-run' });
      }
      const costs = d.replicas < reading.desired && policy.scaleDownIdlestFirst ? await markIdlest(svc, reading) : undefined;
      let outcome;
      const writing = performance.now();
      const wrote = (outcome: string) => {
        requests.inc({ service: svc.service, outcome });
        writeSeconds.observe({ service: svc.service, outcome }, (performance.now() - writing) / 1000);
      };
      try {
        outcome = await timed(o.store.write(svc.deployment, d.replicas, reading.version), `scaling ${svc.deployment.namespace}/${svc.deployment.name} to ${d.replicas}`);
      } catch (e) {
        wrote('error');
        // A write that timed out may still land: seeing its count later is not someone else's change.
        s.written = d.replicas;
        return problem(svc, s, e, { ...base, ...(costs && { deletionCosts: costs }) });
      }
      wrote(outcome);
      if (outcome === 'written') {
        s.state = d.state;
        s.seen = s.written = d.replicas;
        return record(svc, s, { ...base, outcome: 'written', ...(costs && { deletionCosts: costs }) });
      }
      if (attempt >= maxAttempts) return record(svc, s, { ...base, outcome: 'conflict', error: `the Deployment changed during each of ${attempt} attempts (409 Conflict)`, ...(costs && { deletionCosts: costs }) });
    }
  }

  // Costs go on before the write: the ReplicaSet picks its victims the moment it sees the lower count. A failure
  // here costs only the choice of pods, so the scale-down goes ahead (it is already the slow, careful direction).
  async function markIdlest(svc: ServiceScaling, reading: ReplicaReading): Promise<DecisionRecord['deletionCosts']> {
    const { store } = o;
    if (!store.pods || !store.setDeletionCost || !o.podLoad || reading.selector === undefined) return undefined;
    const set: Record<string, number> = {};
    let unchanged = 0;
    const errors: string[] = [];
    try {
      const [pods, load] = await Promise.all([
        timed(store.pods(svc.deployment, reading.selector), `listing the pods of ${svc.deployment.namespace}/${svc.deployment.name}`),
        timed(o.podLoad(svc.service), `reading the load of ${svc.service}'s pods`),
      ]);
      const current = new Map(pods.map((p) => [p.name, p.deletionCost]));
      await Promise.all([...deletionCosts(pods, load)].map(async ([pod, cost]) => {
        if (current.get(pod) === String(cost)) return void unchanged++;
        try {
          await timed(store.setDeletionCost!(svc.deployment, pod, cost), `setting the deletion cost of ${pod}`);
          set[pod] = cost;
          costWrites.inc({ service: svc.service, outcome: 'set' });
        } catch (e) {
          costWrites.inc({ service: svc.service, outcome: 'error' });
          errors.push(e instanceof Error ? e.message : String(e));
        }
      }));
    } catch (e) {
      costWrites.inc({ service: svc.service, outcome: 'error' });
      errors.push(e instanceof Error ? e.message : String(e));
    }
    if (errors.length > 0) o.log.warn('pod deletion costs not all set; scaling down anyway, the ReplicaSet picks the pods', { service: svc.service, errors });
    return { set, unchanged, ...(errors.length > 0 && { error: errors.join('; ') }) };
  }

  // The candidate decides on exactly what the active policy saw, with its own carried state; nothing is written.
  const shadowDecide = (svc: ServiceScaling, s: ServiceState, reading: { desired: number; ready: number }, now: number, queue: QueueReading | undefined) => {
    const policy = o.shadow?.current()?.find((x) => x.service === svc.service)?.policy;
    if (!policy) return;
    const d = decide({ history: s.history, replicas: reading, policy, now, ...(s.shadowState && { state: s.shadowState }), ...(s.externalChangeAt !== undefined && { externalChangeAt: s.externalChangeAt }), ...(queue && { queue }) });
    const changed = d.action !== s.shadow?.action || d.reason !== s.shadow?.reason || d.replicas !== s.shadow?.replicas;
    s.shadowState = d.state;
    s.shadow = { at: new Date(now).toISOString(), replicas: d.replicas, action: d.action, reason: d.reason, mode: d.mode, inputs: d.inputs };
    shadowDecided!.inc({ service: svc.service, action: d.action, reason: d.reason });
    const fields = { service: svc.service, replicas: d.replicas, action: d.action, reason: d.reason, mode: d.mode, current: reading.desired, inputs: d.inputs };
    if (changed) o.log.info('shadow scaling decision (not applied)', fields);
    else o.log.debug('shadow scaling decision (not applied)', fields);
  };

  const problem = (svc: ServiceScaling, s: ServiceState, e: unknown, decision?: Pick<DecisionRecord, 'replicas' | 'action' | 'mode' | 'inputs' | 'deletionCosts'>) => {
    const missing = isReplicaError(e) && e.kind === 'not-found';
    record(svc, s, {
      ...(decision ?? { replicas: null, action: 'hold', mode: s.state?.mode ?? null, inputs: null }),
      reason: missing ? 'deployment-missing' : 'api-error',
      outcome: 'error',
      error: e instanceof Error ? e.message : String(e),
    });
    // A Deployment that comes back is a new start: what we wrote to the old one says nothing about it.
    if (missing) s.seen = s.written = undefined;
  };

  // Where the scaler acts, modes come from its own state; a standby follows what the leader published.
  function refreshModes(now: number): void {
    for (const [service, ov] of overrides) if (ov.until !== null && now >= ov.until) {
      overrides.delete(service);
      o.log.info('forced mode expired; back to auto', { service, mode: ov.mode });
    }
    const next = new Map<string, ModeState>();
    const stamp = (service: string, mode: Mode, reason: ModeState['reason'], until: number | null = null) => {
      const prev = modes.get(service);
      const same = prev && prev.mode === mode && prev.reason === reason;
      next.set(service, { mode, reason, since: same ? prev.since : new Date(now).toISOString(), until: until === null ? null : new Date(until).toISOString() });
    };
    if (acting()) {
      for (const svc of o.policy.current() ?? []) {
        if (overrides.has(svc.service)) continue;
        const mode = svc.policy.forcedMode ?? byService.get(svc.service)?.state?.mode ?? 'normal';
        if (mode !== 'normal') stamp(svc.service, mode, svc.policy.forcedMode ? 'policy' : 'scaler');
      }
      for (const [service, ov] of overrides) stamp(service, ov.mode, 'operator', ov.until);
      o.election?.annotate(MODES_ANNOTATION, JSON.stringify(Object.fromEntries([...next].map(([k, v]) => [k, v.mode]))));
    } else {
      const text = o.election?.holder()?.annotations[MODES_ANNOTATION];
      if (text === undefined) return; // No leader seen yet, or it publishes nothing: keep what we follow.
      try {
        for (const [service, mode] of Object.entries(JSON.parse(text) as Record<string, unknown>)) {
          if (typeof mode === 'string' && (MODES as readonly string[]).includes(mode) && mode !== 'normal') stamp(service, mode as Mode, 'leader');
        }
      } catch {
        return;
      }
    }
    const changed = [...new Set([...modes.keys(), ...next.keys()])].filter((k) => modes.get(k)?.mode !== next.get(k)?.mode || modes.get(k)?.reason !== next.get(k)?.reason);
    if (changed.length === 0) {
      modes = next;
      return;
    }
    for (const service of changed) {
      const to = next.get(service) ?? { mode: 'normal' as const, reason: acting() ? ('scaler' as const) : ('leader' as const) };
      const from = modes.get(service)?.mode ?? 'normal';
      if (from === to.mode) continue;
      modeChanges.inc({ service, mode: to.mode, reason: to.reason });
      o.log.info('mode changed; the data plane follows its playbook', { service, from, to: to.mode, reason: to.reason });
    }
    modes = next;
    o.onModes?.(modes);
  }

  async function tick(): Promise<void> {
    const now = o.timers.now();
    o.stats.expire(now);
    const services = o.policy.current() ?? [];
    const names = new Set(services.map((s) => s.service));
    for (const name of byService.keys()) if (!names.has(name)) byService.delete(name);
    const leading = acting();
    if (o.relay && o.election) {
      const holder = o.election.holder();
      o.relay.forward(leading || !holder ? undefined : holder.annotations[STATS_ADDRESS_ANNOTATION]);
    }
    if (leading !== wasLeading) {
      // A new term starts from fresh decision state: no scale-down before a full window of its own evidence,
      // and no reading of the previous leader's writes as someone else's. The mode the previous leader had
      // published carries over with a stable window to run, so a playbook does not drop at a change of leader.
      for (const s of byService.values()) {
        delete s.state;
        s.seen = s.written = s.externalChangeAt = undefined;
      }
      if (leading) {
        for (const svc of services) {
          const followed = modes.get(svc.service);
          if (followed?.reason === 'leader') stateOf(svc.service).state = { mode: followed.mode, modeUntil: now + svc.policy.stableWindowMs, panicUntil: -Infinity, panicRecurs: false, recommendations: [], since: now };
        }
      }
      wasLeading = leading;
    }
    await Promise.all(services.map(async (svc) => {
      const s = stateOf(svc.service);
      const sample = o.stats.sample(svc.service, now, svc.policy.maxSampleAgeMs);
      s.excluded = sample?.excluded ?? [];
      if (sample) s.history.push({ at: sample.at, activeRequests: sample.activeRequests, envoys: sample.envoys });
      const from = now - svc.policy.stableWindowMs;
      while (s.history.length > 0 && s.history[0]!.at <= from) s.history.shift();
      if (leading) await decideOne(svc, s, now);
    }));
    refreshModes(o.timers.now());
  }

  // One round at a time, whether the loop or an operator's switch asks for it.
  const round = (): Promise<void> => running ?? (running = tick()
    .catch((e: unknown) => o.log.error('scaler round failed', { error: e instanceof Error ? e.stack ?? e.message : String(e) }))
    .finally(() => void (running = undefined)));
  const loop = () => {
    if (stopped) return;
    void round().finally(() => {
      if (!stopped) timer = o.timers.setTimeout(loop, intervalMs);
    });
  };

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      o.log.info('scaler started', { dryRun: o.dryRun, replicasFrom: o.store.kind, leaderElection: o.election !== undefined, intervalMs });
      loop();
    },
    async stop() {
      stopped = true;
      o.timers.clearTimeout(timer);
      await running;
      o.relay?.close();
    },
    tick: round,
    async force(service, mode, forMs) {
      if (!acting()) throw new ForceError('standby', `this replica stands by; force the mode on the leader${o.election?.holder() ? ` (${o.election.holder()!.identity})` : ''}`);
      if (mode !== 'auto' && !(MODES as readonly string[]).includes(mode)) throw new ForceError('bad-request', `"${String(mode)}" is not a mode: auto, ${MODES.join(', ')}`);
      if (!(o.policy.current() ?? []).some((s) => s.service === service) && !(o.known?.(service) ?? false)) throw new ForceError('bad-request', `no service "${service}" is scaled or served here`);
      if (forMs !== undefined && !(Number.isFinite(forMs) && forMs > 0)) throw new ForceError('bad-request', 'the duration must be above zero');
      const now = o.timers.now();
      const before = overrides.get(service);
      if (mode === 'auto') overrides.delete(service);
      else overrides.set(service, { mode, until: forMs === undefined ? null : now + forMs });
      o.log.info(mode === 'auto' ? 'forced mode lifted by the operator' : 'mode forced by the operator', { service, mode, ...(before && { was: before.mode }), ...(forMs !== undefined && { forMs }) });
      // The operator's switch is not held back until the next round: the data plane follows at once. Lifted,
      // the mode is the pressure's again, which takes a decision (one already under way may predate the lift).
      if (mode === 'auto') {
        await running;
        await round();
      } else refreshModes(now);
      return modes.get(service) ?? null;
    },
    status(filter = {}) {
      const list = decisions.filter((d) => filter.service === undefined || d.service === filter.service).reverse().slice(0, filter.limit ?? keep);
      return {
        role: o.election ? (o.election.isLeader() ? 'leader' : 'standby') : 'single',
        leader: o.election ? o.election.holder()?.identity ?? null : null,
        dryRun: o.dryRun,
        replicasFrom: o.store.kind,
        policy: o.policy.status(),
        shadowPolicy: o.shadow?.status() ?? null,
        modes: Object.fromEntries(modes),
        services: Object.fromEntries((o.policy.current() ?? []).map((svc) => {
          const s = byService.get(svc.service);
          return [svc.service, {
            deployment: `${svc.deployment.namespace}/${svc.deployment.name}`,
            current: s?.seen ?? null,
            ready: s?.ready ?? null,
            externalChangeAt: s?.externalChangeAt !== undefined ? new Date(s.externalChangeAt).toISOString() : null,
            last: s?.last ?? null,
            excludedReporters: s?.excluded ?? [],
            shadow: s?.shadow ?? null,
            ...(filter.timeline !== undefined && { timeline: (s?.timeline ?? []).slice(-Math.min(filter.timeline, TIMELINE_POINTS)) }),
          }];
        })),
        decisions: list,
      };
    },
  };
}
