import type { ReplicaCounts } from './decide.js';

// Apart from the Deployment store (replicas.ts) so that a scaler without a Kubernetes API (a dry run on files)
// never loads @kubernetes/client-node.

/** The workload one service's replicas are read from and written to. */
export interface ScaleTarget {
  readonly namespace: string;
  readonly name: string;
}

/** What a read saw: the counts, and the version a write must match (optimistic concurrency). */
export interface ReplicaReading extends ReplicaCounts {
  readonly version: string;
  /** The label selector of the workload's pods (Kubernetes syntax); absent where there are no pods to list. */
  readonly selector?: string;
}

/** One pod of a workload, as {@link ReplicaStore.pods} lists it. */
export interface PodInfo {
  readonly name: string;
  /** status.podIP; absent before the pod has one. */
  readonly ip?: string;
  /** The Ready condition is True. */
  readonly ready: boolean;
  /** Being deleted already (metadata.deletionTimestamp set). */
  readonly deleting: boolean;
  /** The pod's `controller.kubernetes.io/pod-deletion-cost` annotation as it stands. */
  readonly deletionCost?: string;
}

/** The annotation a ReplicaSet reads when it picks the pods to delete on scale-down: lower costs go first. */
export const DELETION_COST_ANNOTATION = 'controller.kubernetes.io/pod-deletion-cost';

/** Why a read or write did not happen: `not-found` (the workload does not exist) or `api` (anything else). */
export class ReplicaError extends Error {
  override readonly name = 'ReplicaError';
  constructor(readonly kind: 'not-found' | 'api', message: string) {
    super(message);
  }
}

/**
 * Whether `e` is a {@link ReplicaError}, by name rather than by class: the Deployment store is loaded on demand
 * (serve.ts), and a runner that loads the rest as CommonJS (the tests, through tsx) has two copies of the class.
 */
export function isReplicaError(e: unknown): e is ReplicaError {
  return e instanceof Error && e.name === 'ReplicaError' && 'kind' in e;
}

/** Where replica counts come from and go to. */
export interface ReplicaStore {
  /** `kubernetes`: a Deployment; `endpoints`: counted from the served endpoints (read only, for dry runs). */
  readonly kind: 'kubernetes' | 'endpoints';
  /** Reads the counts; throws {@link ReplicaError}. */
  read(target: ScaleTarget, service: string): Promise<ReplicaReading>;
  /**
   * Sets the replica count if the workload is still at `version`: `conflict` when it changed since (the caller
   * reads again and decides again). Throws {@link ReplicaError}. Absent on read-only stores.
   */
  write?(target: ScaleTarget, replicas: number, version: string): Promise<'written' | 'conflict'>;
  /** Lists the workload's pods (in its namespace, by the read's selector). Throws {@link ReplicaError}. */
  pods?(target: ScaleTarget, selector: string): Promise<PodInfo[]>;
  /** Sets one pod's deletion cost (a merge patch of its annotation). Throws {@link ReplicaError}. */
  setDeletionCost?(target: ScaleTarget, pod: string, cost: number): Promise<void>;
}

/**
 * Counts from what inferplane serves: every endpoint of the service is a replica, the ready ones (HEALTHY) are
 * ready. Read only: for a dry run where no Kubernetes API is at hand (the compose stack).
 */
export function endpointStore(counts: (service: string) => ReplicaCounts | undefined): ReplicaStore {
  return {
    kind: 'endpoints',
    async read(t, service) {
      const c = counts(service);
      if (!c) throw new ReplicaError('not-found', `service ${service} (for ${t.namespace}/${t.name}) has no served endpoints`);
      return { ...c, version: `${c.desired}/${c.ready}` };
    },
  };
}
