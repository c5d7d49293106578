import type { KubeConfig } from '@kubernetes/client-node';
import type { ListenerSpec } from './model/model.js';
import type { Logger } from './observability/log.js';
import { createMetrics } from './observability/metrics.js';
import { startAdminServer, type AdminServer, type FleetStatus } from './observability/admin.js';
import { createMetricsService } from './scaler/metrics-service.js';
import { createFleetStats } from './scaler/stats.js';
import { DEFAULT_GROUP } from './xds/cache.js';
import { TypeUrl } from './xds/resources.js';
import { watchEndpointsFile } from './sources/file/endpoints-file.js';
import { createEventRecorder } from './sources/kubernetes/events.js';
import { createKubernetesSource } from './sources/kubernetes/source.js';
import { createSnapshotCache } from './xds/cache.js';
import { createPublisher } from './xds/publisher.js';
import { createXdsServer, type XdsServer } from './xds/server.js';
import type { StreamLimits } from './xds/stream.js';

/** Where the model comes from. */
export type Discovery =
  | { readonly kind: 'file'; readonly path: string }
  | {
      readonly kind: 'kubernetes';
      readonly kubeConfig: KubeConfig;
      /** Empty: all namespaces. */
      readonly namespaces: readonly string[];
      readonly serviceSelector: string;
      /** The Envoy listener (Kubernetes has no place for it). */
      readonly listener: ListenerSpec;
      readonly holdOffMs?: number;
      readonly maxDelayMs?: number;
    };

/** Settings of `inferplane serve`. */
export interface ServeOptions {
  readonly discovery: Discovery;
  /** `host:port` for xDS gRPC. */
  readonly xdsAddress: string;
  readonly adminHost: string;
  readonly adminPort: number;
  readonly limits: StreamLimits;
  readonly maxMessageBytes: number;
  readonly log: Logger;
  /** Identifies this replica in Events and `control_plane.identifier`. */
  readonly instance?: string;
}

/** A running control plane. */
export interface Running {
  readonly xds: XdsServer;
  readonly xdsPort: number;
  readonly admin: AdminServer;
  /** True once the source has its full first view and a complete snapshot is served. */
  ready(): boolean;
  /** Graceful stop: streams are closed with UNAVAILABLE so Envoys move to another replica, then ports close. */
  stop(graceMs?: number): Promise<void>;
}

/** Wires a discovery source, the snapshot cache, the xDS server and the admin server together. */
export async function serve(o: ServeOptions): Promise<Running> {
  const metrics = createMetrics();
  const cache = createSnapshotCache();
  const publisher = createPublisher({ cache, log: o.log, metrics });
  const stats = createFleetStats();
  const xds = createXdsServer({
    cache, log: o.log, metrics, limits: o.limits, maxMessageBytes: o.maxMessageBytes, controlPlane: `inferplane ${o.instance ?? ''}`.trim(),
    services: [createMetricsService({ stats, log: o.log, metrics })],
  });
  // Served services, from the clusters (`<service>/<port>`) of the default group.
  const servedServices = () => [...new Set([...(cache.get(DEFAULT_GROUP)?.types[TypeUrl.Cluster].resources.keys() ?? [])].map((c) => c.slice(0, c.lastIndexOf('/'))))].sort();
  const fleet = (): FleetStatus => {
    const now = Date.now();
    stats.expire(now);
    return {
      services: Object.fromEntries(servedServices().map((s) => {
        const sample = stats.sample(s, now);
        return [s, sample ? { activeRequests: sample.activeRequests, envoys: sample.envoys, oldestReportAgeMs: now - sample.at } : null];
      })),
      reporters: stats.reporters().map((r) => ({ nodeId: r.nodeId, ageMs: now - r.at })),
    };
  };
  metrics.gauge('inferplane_fleet_active_requests', 'In-flight requests per service, summed over the Envoys reporting stats', () =>
    Object.entries(fleet().services).filter(([, v]) => v !== null).map(([service, v]) => [{ service }, v!.activeRequests] as const));
  let sourceReady: () => boolean;
  let stopSource: () => Promise<void>;
  const d = o.discovery;
  if (d.kind === 'file') {
    const watch = watchEndpointsFile(d.path, { log: o.log, onModel: (m) => void publisher.publish(m) });
    sourceReady = () => true;
    stopSource = async () => watch.close();
  } else {
    const source = createKubernetesSource({
      kubeConfig: d.kubeConfig,
      namespaces: d.namespaces,
      serviceSelector: d.serviceSelector,
      listener: d.listener,
      log: o.log,
      events: createEventRecorder(d.kubeConfig, o.log, o.instance ?? 'inferplane'),
      onModel: (m, endpointsOnly) => void publisher.publish(m, endpointsOnly),
      ...(d.holdOffMs !== undefined && { holdOffMs: d.holdOffMs }),
      ...(d.maxDelayMs !== undefined && { maxDelayMs: d.maxDelayMs }),
    });
    source.start();
    sourceReady = source.synced;
    stopSource = source.stop;
  }
  const ready = () => sourceReady() && publisher.ready();
  const xdsPort = await xds.listen(o.xdsAddress);
  const admin = await startAdminServer(o.adminHost, o.adminPort, { xds, cache, metrics, ready, fleet });
  o.log.info('inferplane serving', { xds: o.xdsAddress.replace(/:\d+$/, `:${xdsPort}`), admin: `${o.adminHost}:${admin.port}`, discovery: d.kind, ...(d.kind === 'file' && { endpointsFile: d.path }), ready: ready() });
  return {
    xds,
    xdsPort,
    admin,
    ready,
    async stop(graceMs = 5_000) {
      await stopSource();
      await xds.shutdown(graceMs);
      await admin.close();
    },
  };
}
