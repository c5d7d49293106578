import type { PodInfo } from './replica-store.js';

/** The largest deletion cost Kubernetes accepts (the annotation is an int32). */
const MAX_COST = 2 ** 31 - 1;

/**
 * The deletion cost each pod should carry so that a ReplicaSet scaling down removes the idlest pods: the requests
 * in flight on it (by its IP in `load`). A ready pod that could not be read gets the highest cost read (it may be
 * busy, and killing in-flight requests unseen is what this exists to avoid); a pod that is not ready gets 0 (the
 * ReplicaSet removes those first whatever their cost). Pods already being deleted are left out.
 */
export function deletionCosts(pods: readonly PodInfo[], load: ReadonlyMap<string, number>): Map<string, number> {
  const read = (p: PodInfo) => (p.ip === undefined ? undefined : load.get(p.ip));
  const live = pods.filter((p) => !p.deleting);
  const busiest = Math.max(0, ...live.flatMap((p) => (read(p) === undefined ? [] : [read(p)!])));
  return new Map(live.map((p) => {
    const n = read(p) ?? (p.ready ? busiest : 0);
    return [p.name, Math.min(MAX_COST, Math.round(n))];
  }));
}
