/** Which part of inferplane makes a call. */
export type Component = 'discovery' | 'scaler';

/** One kind of Kubernetes API call inferplane makes. */
export interface ApiAccess {
  /** '' is the core group. */
  readonly apiGroup: string;
  /** A resource, or `resource/subresource`. */
  readonly resource: string;
  readonly verbs: readonly string[];
  /**
   * `cluster`: on objects in any watched namespace (a ClusterRole); `namespace`: only on inferplane's own
   * objects in its own namespace (a Role there): the scaling-policy ConfigMap and the scaler's Lease.
   */
  readonly scope: 'cluster' | 'namespace';
  readonly usedBy: readonly Component[];
}

/**
 * Every Kubernetes API call inferplane makes, and nothing more: the RBAC rules in k8s/ are checked against this
 * list, and the integration tests check, from the API server's request log, that each component makes exactly
 * its calls. Add to it in the same change that adds a call.
 */
export const KUBERNETES_ACCESS: readonly ApiAccess[] = [
  { apiGroup: '', resource: 'services', verbs: ['list', 'watch'], scope: 'cluster', usedBy: ['discovery'] },
  { apiGroup: 'discovery.k8s.io', resource: 'endpointslices', verbs: ['list', 'watch'], scope: 'cluster', usedBy: ['discovery'] },
  // Warnings on Services (discovery) and on the scaling-policy ConfigMap (scaler).
  { apiGroup: '', resource: 'events', verbs: ['create'], scope: 'cluster', usedBy: ['discovery', 'scaler'] },
  { apiGroup: 'apps', resource: 'deployments', verbs: ['get'], scope: 'cluster', usedBy: ['scaler'] },
  { apiGroup: 'apps', resource: 'deployments/scale', verbs: ['update'], scope: 'cluster', usedBy: ['scaler'] },
  // Before a scale-down: the Deployment's pods listed by its selector, and their deletion-cost annotation set.
  { apiGroup: '', resource: 'pods', verbs: ['list', 'patch'], scope: 'cluster', usedBy: ['scaler'] },
  { apiGroup: 'coordination.k8s.io', resource: 'leases', verbs: ['get', 'create', 'update'], scope: 'namespace', usedBy: ['scaler'] },
  { apiGroup: '', resource: 'configmaps', verbs: ['list', 'watch'], scope: 'namespace', usedBy: ['scaler'] },
];

/** The calls as `group/resource/verb` strings, optionally only those of one component or scope. */
export function accessCalls(filter: { component?: Component; scope?: ApiAccess['scope'] } = {}): string[] {
  return KUBERNETES_ACCESS
    .filter((a) => (filter.component === undefined || a.usedBy.includes(filter.component)) && (filter.scope === undefined || a.scope === filter.scope))
    .flatMap((a) => a.verbs.map((v) => `${a.apiGroup}/${a.resource}/${v}`))
    .sort();
}
