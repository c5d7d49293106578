import type { Logger } from './observability/log.js';
import { createMetrics } from './observability/metrics.js';
import { startAdminServer, type AdminServer } from './observability/admin.js';
import { watchEndpointsFile, type FileWatch } from './sources/file/endpoints-file.js';
import { createSnapshotCache } from './xds/cache.js';
import { createPublisher } from './xds/publisher.js';
import { createXdsServer, type XdsServer } from './xds/server.js';
import type { StreamLimits } from './xds/stream.js';

/** Settings of `inferplane serve`. */
export interface ServeOptions {
  /** Path of the endpoints file (YAML/JSON), watched for changes. */
  readonly endpointsFile: string;
  /** `host:port` for xDS gRPC. */
  readonly xdsAddress: string;
  readonly adminHost: string;
  readonly adminPort: number;
  readonly limits: StreamLimits;
  readonly maxMessageBytes: number;
  readonly log: Logger;
}

/** A running control plane. */
export interface Running {
  readonly xds: XdsServer;
  readonly xdsPort: number;
  readonly admin: AdminServer;
  readonly watch: FileWatch;
  /** Graceful stop: streams are closed with UNAVAILABLE so Envoys move to another replica, then ports close. */
  stop(graceMs?: number): Promise<void>;
}

/** Wires the endpoints-file source, the snapshot cache, the xDS server and the admin server together. */
export async function serve(o: ServeOptions): Promise<Running> {
  const metrics = createMetrics();
  const cache = createSnapshotCache();
  const publisher = createPublisher({ cache, log: o.log, metrics });
  const xds = createXdsServer({ cache, log: o.log, metrics, limits: o.limits, maxMessageBytes: o.maxMessageBytes });
  const watch = watchEndpointsFile(o.endpointsFile, { log: o.log, onModel: (m) => void publisher.publish(m) });
  const xdsPort = await xds.listen(o.xdsAddress);
  const admin = await startAdminServer(o.adminHost, o.adminPort, { xds, cache, metrics, ready: publisher.ready });
  o.log.info('inferplane serving', { xds: o.xdsAddress.replace(/:\d+$/, `:${xdsPort}`), admin: `${o.adminHost}:${admin.port}`, endpointsFile: o.endpointsFile, ready: publisher.ready() });
  return {
    xds,
    xdsPort,
    admin,
    watch,
    async stop(graceMs = 5_000) {
      watch.close();
      await xds.shutdown(graceMs);
      await admin.close();
    },
  };
}
