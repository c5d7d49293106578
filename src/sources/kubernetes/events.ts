import { CoreV1Api, type KubeConfig, type V1Service } from '@kubernetes/client-node';
import type { Logger } from '../../observability/log.js';

/** Reports problems on Kubernetes objects as Events, where `kubectl describe` shows them. */
export interface EventRecorder {
  /** Creates a Warning Event on the Service. Failures to record are logged, never thrown. */
  warn(svc: V1Service, reason: string, message: string): Promise<void>;
}

/** Creates an {@link EventRecorder} writing core/v1 Events through the API server. */
export function createEventRecorder(kubeConfig: KubeConfig, log: Logger, instance: string): EventRecorder {
  const api = kubeConfig.makeApiClient(CoreV1Api);
  return {
    async warn(svc, reason, message) {
      const namespace = svc.metadata?.namespace ?? 'default';
      const now = new Date();
      try {
        await api.createNamespacedEvent({
          namespace,
          body: {
            metadata: { generateName: `${svc.metadata?.name}.`, namespace },
            involvedObject: { apiVersion: 'v1', kind: 'Service', name: svc.metadata?.name, namespace, uid: svc.metadata?.uid, resourceVersion: svc.metadata?.resourceVersion },
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
        log.warn('cannot record Event', { service: `${namespace}/${svc.metadata?.name}`, reason, error: e instanceof Error ? e.message : String(e) });
      }
    },
  };
}
