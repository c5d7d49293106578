import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../observability/log.js';
import type { Timers } from '../sources/kubernetes/timers.js';

/** Options of {@link createLeaderElector}. */
export interface LeaderElectorOptions {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  readonly name: string;
  /** This replica's identity (the pod name): written as the holder. */
  readonly identity: string;
  /** How long a holder's claim lasts without renewal. Default 15 s (client-go's default). */
  readonly leaseDurationMs?: number;
  /** A leader that could not renew for this long stops acting (before anyone may take over). Default 10 s. */
  readonly renewDeadlineMs?: number;
  /** How often to try to acquire or renew. Default 2 s. */
  readonly retryPeriodMs?: number;
  /** Annotations the leader writes on the Lease (e.g. where followers reach it). */
  readonly annotations?: Readonly<Record<string, string>>;
  readonly timers: Timers;
  readonly log: Logger;
  /** Called when this replica becomes leader, and when it stops being leader. */
  readonly onChange?: (leading: boolean) => void;
}

/** One replica's side of the election. */
export interface LeaderElector {
  start(): void;
  /** Stops trying; a leader releases the Lease so another replica takes over at once, not after it expires. */
  stop(): Promise<void>;
  isLeader(): boolean;
  /** The holder as last seen (this replica's identity when leading), with its annotations. */
  holder(): { identity: string; annotations: Record<string, string> } | undefined;
  /**
   * Sets an annotation the leader writes on the Lease from its next acquire or renewal on (followers see it
   * when they next read the Lease: within about two retry periods).
   */
  annotate(key: string, value: string): void;
}

/**
 * Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it: the holder renews `renewTime`
 * every retry period; others take over only when the record has not changed for a full lease duration
 * (measured on their own clock from when they saw it change, so clock skew between nodes does not matter),
 * or at once when the holder released it (empty holder). Every write carries the read's resourceVersion: two
 * contenders cannot both win.
 */
export function createLeaderElector(o: LeaderElectorOptions): LeaderElector {
  const api = o.kubeConfig.makeApiClient(CoordinationV1Api);
  const durationMs = o.leaseDurationMs ?? 15_000;
  const renewDeadlineMs = o.renewDeadlineMs ?? 10_000;
  const retryMs = o.retryPeriodMs ?? 2_000;
  const seconds = Math.max(1, Math.ceil(durationMs / 1000));
  let leading = false;
  let lastRenew = -Infinity;
  let observed: { key: string; at: number; identity: string; annotations: Record<string, string> } | undefined;
  let timer: unknown;
  let stopped = true;
  let inFlight: Promise<void> = Promise.resolve();
  const annotations: Record<string, string> = { ...o.annotations };

  const setLeading = (v: boolean) => {
    if (v === leading) return;
    leading = v;
    o.log.info(v ? 'became scaler leader' : 'stopped being scaler leader', { lease: `${o.namespace}/${o.name}`, identity: o.identity });
    o.onChange?.(v);
  };
  const mine = (prev: V1Lease | undefined, now: Date): V1Lease => {
    const taking = prev?.spec?.holderIdentity !== o.identity;
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { ...prev?.metadata, name: o.name, namespace: o.namespace, annotations: { ...prev?.metadata?.annotations, ...annotations } },
      spec: {
        holderIdentity: o.identity,
        leaseDurationSeconds: seconds,
        acquireTime: taking ? new V1MicroTime(now.getTime()) : prev?.spec?.acquireTime ?? new V1MicroTime(now.getTime()),
        renewTime: new V1MicroTime(now.getTime()),
        leaseTransitions: (prev?.spec?.leaseTransitions ?? 0) + (prev && taking ? 1 : 0),
      },
    };
  };

  async function attempt(): Promise<void> {
    const now = o.timers.now();
    let lease: V1Lease | undefined;
    try {
      lease = await api.readNamespacedLease({ name: o.name, namespace: o.namespace });
    } catch (e) {
      if ((e as { code?: number }).code !== 404) return failed(e, now);
    }
    try {
      if (!lease) {
        await api.createNamespacedLease({ namespace: o.namespace, body: mine(undefined, new Date(now)) });
        return renewed(now);
      }
      const holder = lease.spec?.holderIdentity ?? '';
      const key = `${holder}|${String(lease.spec?.renewTime?.valueOf())}|${lease.metadata?.resourceVersion}`;
      if (observed?.key !== key) observed = { key, at: now, identity: holder, annotations: { ...lease.metadata?.annotations } };
      const expired = now - observed.at >= (lease.spec?.leaseDurationSeconds ?? seconds) * 1000;
      if (holder !== '' && holder !== o.identity && !expired) return setLeading(false);
      const updated = await api.replaceNamespacedLease({ name: o.name, namespace: o.namespace, body: mine(lease, new Date(now)) });
      observed = { key: `${o.identity}|${String(updated.spec?.renewTime?.valueOf())}|${updated.metadata?.resourceVersion}`, at: now, identity: o.identity, annotations: { ...updated.metadata?.annotations } };
      return renewed(now);
    } catch (e) {
      // 409: someone else wrote first (created or renewed); they hold it for now.
      if ((e as { code?: number }).code === 409) return failed(undefined, now);
      return failed(e, now);
    }
  }
  const renewed = (now: number) => {
    lastRenew = now;
    setLeading(true);
  };
  const failed = (e: unknown, now: number) => {
    if (e !== undefined) o.log.warn('cannot read or renew the scaler Lease', { lease: `${o.namespace}/${o.name}`, error: e instanceof Error ? e.message.split('\n')[0] : String(e) });
    if (leading && now - lastRenew >= renewDeadlineMs) setLeading(false);
  };
  const loop = () => {
    if (stopped) return;
    inFlight = attempt().finally(() => {
      if (!stopped) timer = o.timers.setTimeout(loop, retryMs);
    });
  };
  return {
    start() {
      if (!stopped) return;
      stopped = false;
      loop();
    },
    async stop() {
      stopped = true;
      o.timers.clearTimeout(timer);
      await inFlight;
      if (!leading) return;
      setLeading(false);
      try {
        const lease = await api.readNamespacedLease({ name: o.name, namespace: o.namespace });
        if (lease.spec?.holderIdentity !== o.identity) return;
        // Released as client-go does: no holder, so the next contender takes it without waiting for expiry.
        const now = new V1MicroTime();
        await api.replaceNamespacedLease({ name: o.name, namespace: o.namespace, body: { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now, acquireTime: now } } });
        o.log.info('released the scaler Lease', { lease: `${o.namespace}/${o.name}` });
      } catch (e) {
        o.log.warn('cannot release the scaler Lease; another replica takes over when it expires', { error: e instanceof Error ? e.message.split('\n')[0] : String(e) });
      }
    },
    // A leader whose renewals stalled stops acting at the deadline, even while its request is still hanging.
    isLeader: () => leading && o.timers.now() - lastRenew < renewDeadlineMs,
    annotate: (key, value) => void (annotations[key] = value),
    holder: () => (leading ? { identity: o.identity, annotations: { ...annotations } } : observed && observed.identity !== '' ? { identity: observed.identity, annotations: observed.annotations } : undefined),
  };
}
