import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../observability/log.js';
import { loadEnvoyProtos, messageType } from '../xds/protos.js';
import { RELAY_ENVOYS, RELAY_NODE_PREFIX, RELAY_OLDEST_AGE_MS } from './metrics-service.js';
import { ACTIVE_GAUGE, type FleetStats } from './stats.js';

/** The Lease annotation where the scaler leader says where its MetricsService is (`host:port`). */
export const STATS_ADDRESS_ANNOTATION = 'inferplane.io/stats-address';

/**
 * A gRPC client class for Envoy's MetricsService (as the metrics_service sink is): StreamMetrics takes
 * StreamMetricsMessage objects (encoded with Envoy's protos) or already encoded bytes.
 */
export function metricsServiceClient(): grpc.ServiceClientConstructor {
  loadEnvoyProtos(['envoy/service/metrics/v3/metrics_service.proto']);
  const Message = messageType('envoy.service.metrics.v3.StreamMetricsMessage');
  return grpc.makeGenericClientConstructor({
    StreamMetrics: {
      path: '/envoy.service.metrics.v3.MetricsService/StreamMetrics',
      requestStream: true,
      responseStream: false,
      requestSerialize: (m: object | Buffer) => (Buffer.isBuffer(m) ? m : Buffer.from(Message.encode(Message.fromObject(m)).finish())),
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
    },
  }, 'MetricsService');
}

/** Forwards this replica's Envoy sums to the scaler leader. */
export interface StatsRelay {
  /** Sends the current sums to `leader` (`host:port`), or closes the stream when undefined. */
  forward(leader: string | undefined): void;
  close(): void;
}

/**
 * Each Envoy streams its stats to one inferplane replica (the one its xDS connection landed on), so with
 * several replicas every one sees part of the fleet. Followers forward the sums of their own Envoys to the
 * leader over the leader's own MetricsService, as one reporter standing for that many Envoys; the leader adds
 * them to its own (over mTLS when the port has it: `channel`). Only direct reports are forwarded, so sums never travel twice; when an Envoy moves between
 * replicas its old stream ends and the old replica forgets it, so it is not counted twice either.
 */
export function createStatsRelay(o: { stats: FleetStats; identity: string; log: Logger; now?: () => number; channel?: () => { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions } }): StatsRelay {
  const Client = metricsServiceClient();
  const now = o.now ?? Date.now;
  const node = `${RELAY_NODE_PREFIX}${o.identity}`;
  let target: string | undefined;
  let client: grpc.Client | undefined;
  let call: grpc.ClientWritableStream<object> | undefined;
  const close = () => {
    call?.end();
    client?.close();
    call = client = target = undefined;
  };
  const gauge = (name: string, value: number) => ({ name, type: 'GAUGE', metric: [{ gauge: { value } }] });
  return {
    forward(leader) {
      if (leader !== target) close();
      if (leader === undefined) return;
      const t = now();
      const local = o.stats.local(t);
      if (!local) return;
      if (!call) {
        target = leader;
        // Asked for on every new connection, so a rotated certificate is used from then on.
        const channel = o.channel?.();
        client = new Client(leader, channel?.credentials ?? grpc.credentials.createInsecure(), channel?.options ?? {});
        const opened = (client as unknown as { StreamMetrics(cb: (e: grpc.ServiceError | null) => void): grpc.ClientWritableStream<object> }).StreamMetrics((e) => {
          if (e) o.log.warn('stats relay to the scaler leader ended; reopening on the next round', { leader, error: e.details || e.message });
          if (call === opened) close();
        });
        opened.on('error', () => undefined);
        call = opened;
      }
      call.write({
        identifier: { node: { id: node } },
        envoy_metrics: [
          ...[...local.active].map(([cluster, v]) => gauge(`cluster.${cluster}.${ACTIVE_GAUGE}`, v)),
          gauge(RELAY_ENVOYS, local.envoys),
          gauge(RELAY_OLDEST_AGE_MS, t - local.oldestAt),
        ],
      });
    },
    close,
  };
}
