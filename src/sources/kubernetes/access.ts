/** One kind of Kubernetes API call inferplane makes. */
export interface ApiAccess {
  /** '' is the core group. */
  readonly apiGroup: string;
  readonly resource: string;
  readonly verbs: readonly string[];
}

/**
 * Every Kubernetes API call inferplane makes, and nothing more: the RBAC rules in k8s/ are checked against this
 * list, and the integration tests check, from the API server's request log, that the code makes no other
 * call. Add to it in the same change that adds a call.
 */
export const KUBERNETES_ACCESS: readonly ApiAccess[] = [
  { apiGroup: '', resource: 'services', verbs: ['list', 'watch'] },
  { apiGroup: 'discovery.k8s.io', resource: 'endpointslices', verbs: ['list', 'watch'] },
  { apiGroup: '', resource: 'events', verbs: ['create'] },
];
