import * as grpc from '@grpc/grpc-js';
import { metricsServiceClient } from '../../src/scaler/relay.js';

const MetricsClient = metricsServiceClient();

/** One Envoy's stats stream, as the envoy.stat_sinks.metrics_service sink sends it (real gRPC, real protobuf). */
export function envoyStream(address: string, channel: { credentials: grpc.ChannelCredentials; options?: grpc.ChannelOptions } = { credentials: grpc.credentials.createInsecure() }) {
  const client = new MetricsClient(address, channel.credentials, channel.options ?? {});
  let resolve!: (e: grpc.ServiceError | null) => void;
  const status = new Promise<grpc.ServiceError | null>((r) => (resolve = r));
  const call = (client as any).StreamMetrics((e: grpc.ServiceError | null) => resolve(e));
  return {
    send: (m: object | Buffer) => call.write(m),
    end: () => call.end(),
    status: () => status,
    close: () => client.close(),
  };
}

/** A StreamMetricsMessage carrying `cluster.<name>.upstream_rq_active` gauges (the node id goes in the first). */
export const report = (node: string | undefined, active: Record<string, number>) => ({
  ...(node && { identifier: { node: { id: node } } }),
  envoy_metrics: Object.entries(active).map(([cluster, v]) => ({ name: `cluster.${cluster}.upstream_rq_active`, type: 'GAUGE', metric: [{ gauge: { value: v } }] })),
});

/**
 * A fake Envoy fleet: `size` Envoys, each streaming its share of `load` in-flight requests to `cluster` every
 * `everyMs` (a stats flush interval) to each address given to `connect`.
 */
export function fakeFleet(o: { size: number; cluster: string; everyMs: number; prefix?: string }) {
  let load = 0;
  const streams: { node: string; s: ReturnType<typeof envoyStream> }[] = [];
  const send = () => {
    for (const [i, { node, s }] of streams.entries()) {
      const share = Math.floor(load / o.size) + (i % o.size < load % o.size ? 1 : 0);
      s.send(report(node, { [o.cluster]: share }));
    }
  };
  const timer = setInterval(send, o.everyMs);
  return {
    /** Opens one stream per Envoy to `address`; `channel` gives an Envoy its credentials (plaintext without). */
    connect(address: string, channel?: (node: string) => Parameters<typeof envoyStream>[1]) {
      for (let i = 0; i < o.size; i++) {
        const node = `${o.prefix ?? 'envoy'}-${i}`;
        streams.push({ node, s: envoyStream(address, channel?.(node)) });
      }
    },
    /** Sets the fleet's total in-flight requests; sent at once and on every flush. */
    setLoad(total: number) {
      load = total;
      send();
    },
    close() {
      clearInterval(timer);
      for (const { s } of streams) {
        s.end();
        s.close();
      }
      streams.length = 0;
    },
  };
}
