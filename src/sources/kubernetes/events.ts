import { CoreV1Api, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../../observability/log.js';

/** Reports problems on Kubernetes objects as Events, where `kubectl describe` shows them. */
export interface EventRecorder {
  /**
   * Creates a Warning Event on the object (a Service, a ConfigMap, a Deployment: `kind` and `apiVersion` say
   * which; client-node's typed objects leave them out, so they are passed). Failures to record are logged,
   * never thrown.
   */
  warn(obj: KubernetesObject, kind: { apiVersion: string; kind: string }, reason: string, message: string): Promise<void>;
}

/** Creates an {@link EventRecorder} writing core/v1 Events through the API server. */
export function createEventRecorder(kubeConfig: KubeConfig, log: Logger, instance: string): EventRecorder {
  const api = kubeConfig.makeApiClient(CoreV1Api);
  return {
    async warn(obj, kind, reason, message) {
      const namespace = obj.metadata?.namespace ?? 'default';
      const now = new Date();
      try {
        await api.createNamespacedEvent({
          namespace,
          body: {
            metadata: { generateName: `${obj.metadata?.name}.`, namespace },
            involvedObject: { ...kind, name: obj.metadata?.name, namespace, uid: obj.metadata?.uid, resourceVersion: obj.metadata?.resourceVersion },
            reason,
            message: message.slice(0, 1024),
            type: 'Warning',
            source: { component: 'inferplane' },
            reportingComponent: 'inferplane',
            reportingInstance: instance,
            firstTimestamp: now,
            lastTimestamp: now,
            count: 1,
          },
        });
      } catch (e) {
        log.warn('cannot record Event', { object: `${kind.kind} ${namespace}/${obj.metadata?.name}`, reason, error: e instanceof Error ? e.message : String(e) });
      }
    },
  };
}
