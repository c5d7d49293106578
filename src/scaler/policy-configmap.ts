import { CoreV1Api, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import type { EventRecorder } from '../sources/kubernetes/events.js';
import { createSupervisedInformer } from '../sources/kubernetes/informer.js';
import type { Timers } from '../sources/kubernetes/timers.js';
import { POLICY_KEY } from './policy.js';
import { createPolicyHolder, type Common, type PolicySource } from './policy-source.js';

/**
 * The policy from the `policy.yaml` key of one ConfigMap, watched (only that object, by field selector). A
 * rejected version is also reported as a Warning Event `InvalidScalingPolicy` on the ConfigMap, once per
 * version. A deleted ConfigMap leaves the last good policy in force (logged).
 */
export function configMapPolicySource(o: Common & {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  readonly name: string;
  readonly events: EventRecorder;
  readonly timers: Timers;
}): PolicySource {
  const holder = createPolicyHolder(`configmap:${o.namespace}/${o.name}`, o);
  const core = o.kubeConfig.makeApiClient(CoreV1Api);
  const fieldSelector = `metadata.name=${o.name}`;
  let seen: string | undefined;
  const informer = createSupervisedInformer<V1ConfigMap>({
    kubeConfig: o.kubeConfig,
    path: `/api/v1/namespaces/${o.namespace}/configmaps`,
    list: () => core.listNamespacedConfigMap({ namespace: o.namespace, fieldSelector }),
    fieldSelector,
    name: 'scaling-policy',
    log: o.log,
    timers: o.timers,
    onChange: (cm) => {
      if (cm.metadata?.name !== o.name) return;
      const live = informer.list().find((c) => c.metadata?.name === o.name);
      if (!live) {
        o.log.error('the scaling policy ConfigMap was deleted; the last good policy stays in force', { configMap: `${o.namespace}/${o.name}`, inForce: holder.status().version });
        return;
      }
      const version = live.metadata?.resourceVersion ?? '';
      if (version === seen) return;
      seen = version;
      const problems = holder.offer(live.data?.[POLICY_KEY], version);
      if (problems) {
        void o.events.warn(live, { apiVersion: 'v1', kind: 'ConfigMap' }, 'InvalidScalingPolicy', `${POLICY_KEY} rejected, the last good policy stays in force: ${problems.join('; ')}`);
      }
    },
    onSynced: () => {
      if (!informer.list().some((c) => c.metadata?.name === o.name)) o.log.warn('the scaling policy ConfigMap does not exist (yet); nothing is scaled until it does', { configMap: `${o.namespace}/${o.name}` });
    },
  });
  return {
    start: () => informer.start(),
    stop: () => informer.stop(),
    current: holder.current,
    status: holder.status,
  };
}
