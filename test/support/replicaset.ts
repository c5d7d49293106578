import type { ApiServerStandIn, KubeObject } from './apiserver.js';

/** What the stand-in controllers keep for one Deployment. */
export interface DeploymentControllerOptions {
  readonly namespace: string;
  readonly name: string;
  /** The pods' labels (the Deployment's selector.matchLabels). */
  readonly labels: Record<string, string>;
  /** Pod IPs, handed out in order to new pods (an IP is free again once its pod is gone). */
  readonly ips: readonly string[];
  /** Also keep an EndpointSlice of this Service (as the EndpointSlice controller does): ready pods, this port. */
  readonly endpointSlice?: { readonly service: string; readonly port: number };
  /** How often the controllers look. Default 50 ms. */
  readonly everyMs?: number;
}

/** The running stand-in controllers. */
export interface DeploymentController {
  /** Pods deleted on scale-down, in order, with their deletion cost then. */
  readonly deleted: { readonly pod: string; readonly ip: string; readonly cost: string | undefined }[];
  /** The live pods, oldest first. */
  pods(): KubeObject[];
  stop(): void;
}

const COST = 'controller.kubernetes.io/pod-deletion-cost';
const PHASE_RANK: Record<string, number> = { Pending: 0, Unknown: 1, Running: 2 };

/**
 * The Deployment, ReplicaSet and EndpointSlice controllers of a cluster, reduced to what the scaler depends on,
 * over the stand-in API server: pods follow spec.replicas (created ready at once, each with an IP), status
 * follows the pods, and on scale-down the ReplicaSet deletes pods in its documented order (ActivePodsWithRanks,
 * kubernetes/pkg/controller/controller_utils.go): pending before running, not ready before ready, then lower
 * `controller.kubernetes.io/pod-deletion-cost` first, then newer before older.
 */
export function startDeploymentController(api: ApiServerStandIn, o: DeploymentControllerOptions): DeploymentController {
  const deleted: DeploymentController['deleted'] = [];
  let serial = 0;
  let created = 0;
  const owned = () => api.list('pods').filter((p) => p.metadata.namespace === o.namespace && Object.entries(o.labels).every(([k, v]) => p.metadata.labels?.[k] === v));
  const byAge = (pods: KubeObject[]) => pods.sort((a, b) => String(a.metadata['creationTimestamp']).localeCompare(String(b.metadata['creationTimestamp'])) || a.metadata.name.localeCompare(b.metadata.name));
  const ready = (p: KubeObject) => ((p['status'] as any)?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True');
  const cost = (p: KubeObject) => {
    const n = Number(p.metadata.annotations?.[COST] ?? '0');
    return Number.isInteger(n) ? n : 0;
  };
  // Ranks as the ReplicaSet sorts victims: the first in this order are deleted first.
  const victimOrder = (a: KubeObject, b: KubeObject) =>
    (PHASE_RANK[(a['status'] as any)?.phase] ?? 0) - (PHASE_RANK[(b['status'] as any)?.phase] ?? 0) ||
    Number(ready(a)) - Number(ready(b)) ||
    cost(a) - cost(b) ||
    String(b.metadata['creationTimestamp']).localeCompare(String(a.metadata['creationTimestamp']));

  const step = () => {
    const d = api.get('deployments', o.namespace, o.name);
    if (!d) return;
    const want = (d['spec'] as { replicas?: number }).replicas ?? 1;
    let pods = owned();
    if (pods.length > want) {
      for (const p of [...pods].sort(victimOrder).slice(0, pods.length - want)) {
        deleted.push({ pod: p.metadata.name, ip: (p['status'] as any).podIP, cost: p.metadata.annotations?.[COST] });
        api.remove('pods', o.namespace, p.metadata.name);
      }
    }
    pods = owned();
    const used = new Set(pods.map((p) => (p['status'] as any).podIP));
    for (let i = pods.length; i < want; i++) {
      const ip = o.ips.find((x) => !used.has(x));
      if (!ip) break;
      used.add(ip);
      // Creation times a millisecond apart keep "newer first" well defined within one step.
      const at = new Date(Date.UTC(2026, 0, 1) + ++created).toISOString();
      api.apply({
        apiVersion: 'v1', kind: 'Pod',
        metadata: { name: `${o.name}-${(++serial).toString(36).padStart(5, '0')}`, namespace: o.namespace, labels: o.labels, creationTimestamp: at },
        spec: { nodeName: 'node-1' },
        status: { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: 'True' }] },
      });
    }
    pods = byAge(owned());
    const st = d['status'] as { replicas?: number; readyReplicas?: number } | undefined;
    const readyCount = pods.filter(ready).length;
    if (st?.replicas !== pods.length || st?.readyReplicas !== readyCount) api.apply({ ...d, status: { replicas: pods.length, readyReplicas: readyCount } });
    if (o.endpointSlice) {
      const name = `${o.endpointSlice.service}-pods`;
      const addresses = pods.filter(ready).map((p) => (p['status'] as any).podIP as string);
      const current = api.get('endpointslices', o.namespace, name);
      const had = ((current?.['endpoints'] as any[]) ?? []).map((e) => e.addresses[0]);
      if (!current || JSON.stringify(had) !== JSON.stringify(addresses)) {
        api.apply({
          apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
          metadata: { name, namespace: o.namespace, labels: { 'kubernetes.io/service-name': o.endpointSlice.service } },
          addressType: 'IPv4', ports: [{ name: 'http', port: o.endpointSlice.port }],
          endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true, serving: true, terminating: false } })),
        });
      }
    }
  };
  step();
  const timer = setInterval(step, o.everyMs ?? 50);
  return { deleted, pods: () => byAge(owned()), stop: () => clearInterval(timer) };
}
