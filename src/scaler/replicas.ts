import { AppsV1Api, CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1LabelSelector } from '@kubernetes/client-node';
import { DELETION_COST_ANNOTATION, ReplicaError, type PodInfo, type ReplicaReading, type ReplicaStore } from './replica-store.js';

/** A LabelSelector as the `labelSelector` query parameter spells it (set-based syntax for expressions). */
export function selectorText(sel: V1LabelSelector | undefined): string | undefined {
  const terms = Object.entries(sel?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of sel?.matchExpressions ?? []) {
    const values = `(${(e.values ?? []).join(',')})`;
    if (e.operator === 'In') terms.push(`${e.key} in ${values}`);
    else if (e.operator === 'NotIn') terms.push(`${e.key} notin ${values}`);
    else if (e.operator === 'Exists') terms.push(e.key);
    else if (e.operator === 'DoesNotExist') terms.push(`!${e.key}`);
    else return undefined;
  }
  // An empty selector would match every pod of the namespace: never a workload's own.
  return terms.length > 0 ? terms.join(',') : undefined;
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
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  return {
    kind: 'kubernetes',
    async read(t) {
      try {
        const d = await apps.readNamespacedDeployment({ name: t.name, namespace: t.namespace });
        const selector = selectorText(d.spec?.selector);
        return { desired: d.spec?.replicas ?? 1, ready: d.status?.readyReplicas ?? 0, version: d.metadata?.resourceVersion ?? '', ...(selector !== undefined && { selector }) };
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
    async pods(t, selector) {
      try {
        const list = await core.listNamespacedPod({ namespace: t.namespace, labelSelector: selector });
        return list.items.map((p) => {
          const cost = p.metadata?.annotations?.[DELETION_COST_ANNOTATION];
          return {
            name: p.metadata?.name ?? '',
            ...(p.status?.podIP && { ip: p.status.podIP }),
            ready: p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
            deleting: p.metadata?.deletionTimestamp !== undefined && p.metadata.deletionTimestamp !== null,
            ...(cost !== undefined && { deletionCost: cost }),
          };
        });
      } catch (e) {
        throw apiError(e, `listing the pods of Deployment ${t.namespace}/${t.name} (${selector})`);
      }
    },
    async setDeletionCost(t, pod, cost) {
      try {
        await core.patchNamespacedPod({ name: pod, namespace: t.namespace, body: { metadata: { annotations: { [DELETION_COST_ANNOTATION]: String(cost) } } } }, mergePatch);
      } catch (e) {
        throw apiError(e, `setting the deletion cost of pod ${t.namespace}/${pod}`);
      }
    },
  };
}
