import { credentials, type ChannelOptions } from '@grpc/grpc-js';
import type { Model } from '../../src/model/model.js';
import { createMemoryLogger } from '../../src/observability/log.js';
import { createMetrics, type Metrics } from '../../src/observability/metrics.js';
import { createSnapshotCache, type SnapshotCache } from '../../src/xds/cache.js';
import { createPublisher, type Publisher } from '../../src/xds/publisher.js';
import { createXdsServer, type XdsServer, type XdsServerOptions } from '../../src/xds/server.js';
import { RecordingXdsClient } from './xds-client.js';

/** A real xDS server on an ephemeral loopback port, with the pieces tests reach into. */
export interface Harness {
  readonly address: string;
  readonly server: XdsServer;
  readonly cache: SnapshotCache;
  readonly publisher: Publisher;
  readonly metrics: Metrics;
  readonly log: ReturnType<typeof createMemoryLogger>;
  /** Publishes `m` and waits for it; throws the problems if it is refused. */
  publish(m: Model): Promise<void>;
  client(variant: 'sotw' | 'delta', service?: 'ads' | 'cds' | 'eds' | 'lds' | 'rds', options?: ChannelOptions): RecordingXdsClient;
  stop(): Promise<void>;
}

/** Starts a harness, publishing `initial` first when given. */
export async function startHarness(initial?: Model, options: Partial<XdsServerOptions> = {}): Promise<Harness> {
  const log = createMemoryLogger();
  const metrics = createMetrics();
  const cache = createSnapshotCache();
  const publisher = createPublisher({ cache, log, metrics, ...(options.limits?.maxResponseBytes && { maxResponseBytes: options.limits.maxResponseBytes }) });
  const publish = async (m: Model) => {
    const r = await publisher.publish(m);
    if (!r.ok) throw new Error(r.error.join('\n'));
  };
  if (initial) await publish(initial);
  const server = createXdsServer({ cache, log, metrics, ...options });
  const port = await server.listen('127.0.0.1:0');
  const address = `127.0.0.1:${port}`;
  const clients: RecordingXdsClient[] = [];
  return {
    address,
    server,
    cache,
    publisher,
    metrics,
    log,
    publish,
    client(variant, service = 'ads', channelOptions = {}) {
      const c = new RecordingXdsClient(address, variant, service, credentials.createInsecure(), channelOptions);
      clients.push(c);
      return c;
    },
    async stop() {
      for (const c of clients) c.close();
      await server.shutdown(1000);
    },
  };
}

/** Polls `cond` until it holds or `timeoutMs` passes (then throws `what`). */
export async function eventually(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
