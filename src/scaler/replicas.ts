import { AppsV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { ReplicaCounts } from './decide.js';

/** The workload one service's replicas are read from and written to. */
export interface ScaleTarget {
  readonly namespace: string;
  readonly name: string;
}

/** What a read saw: the counts, and the version a write must match (optimistic concurrency). */
export interface ReplicaReading extends ReplicaCounts {
  readonly version: string;
}

/** Why a read or write did not happen: `not-found` (the workload does not exist) or `api` (anything else). */
export class ReplicaError extends Error {
  constructor(readonly kind: 'not-found' | 'api', message: string) {
    super(message);
  }
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
}

function apiError(e: unknown, what: string): ReplicaError {
  const code = (e as { code?: number }).code;
  let detail = e instanceof Error ? e.message.split('\n')[0]! : String(e);
  const body = (e as { body?: unknown }).body;
  try {
    const parsed = typeof body === 'string' ? (JSON.parse(body) as { message?: string }) : (body as { message?: string } | undefined);
    if (parsed?.message) detail = parsed.message;
  } catch {
    // Not a Status object: the exception's own message says enough.
  }
  return new ReplicaError(code === 404 ? 'not-found' : 'api', `${what}: ${code ? `HTTP ${code}: ` : ''}${detail}`);
}

/**
 * Deployments through the API server: counts from the Deployment (spec.replicas, status.readyReplicas), writes
 * through its `scale` subresource carrying the read's resourceVersion, so a change made in between (by a person,
 * a rollout, another controller) turns into a 409 instead of being overwritten.
 */
export function deploymentStore(kubeConfig: KubeConfig): ReplicaStore {
  const apps = kubeConfig.makeApiClient(AppsV1Api);
  return {
    kind: 'kubernetes',
    async read(t) {
      try {
        const d = await apps.readNamespacedDeployment({ name: t.name, namespace: t.namespace });
        return { desired: d.spec?.replicas ?? 1, ready: d.status?.readyReplicas ?? 0, version: d.metadata?.resourceVersion ?? '' };
      } catch (e) {
        throw apiError(e, `reading Deployment ${t.namespace}/${t.name}`);
      }
    },
    async write(t, replicas, version) {
      try {
        await apps.replaceNamespacedDeploymentScale({
          name: t.name,
          namespace: t.namespace,
          body: { apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: { name: t.name, namespace: t.namespace, resourceVersion: version }, spec: { replicas } },
        });
        return 'written';
      } catch (e) {
        if ((e as { code?: number }).code === 409) return 'conflict';
        throw apiError(e, `scaling Deployment ${t.namespace}/${t.name} to ${replicas}`);
      }
    },
  };
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
