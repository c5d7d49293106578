import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import { loadEnvoyProtos, messageType } from '../xds/protos.js';
import { activeByCluster, gaugesOf, type FleetStats, type MetricFamilyMessage } from './stats.js';

/** A gRPC service ready to add to a server. */
export interface GrpcService {
  readonly definition: grpc.ServiceDefinition;
  readonly handlers: grpc.UntypedServiceImplementation;
}

interface StreamMetricsMessage {
  identifier?: { node?: { id?: string } | null } | null;
  envoy_metrics?: MetricFamilyMessage[];
}

/**
 * Envoy's `envoy.service.metrics.v3.MetricsService`: Envoys configured with the
 * `envoy.stat_sinks.metrics_service` sink stream their stats every flush interval; each message's
 * `upstream_rq_active` gauges are recorded in `stats` under the stream's node id (sent on its first message).
 * Undecodable messages and a first message without a node id end the stream with INVALID_ARGUMENT;
 * implausible gauges are refused and counted; a second live stream with the same node id is reported (its
 * reports replace the first's, so a misconfigured fleet is not double counted).
 */
export function createMetricsService(o: { stats: FleetStats; log: Logger; metrics: Metrics; now?: () => number }): GrpcService {
  loadEnvoyProtos(['envoy/service/metrics/v3/metrics_service.proto']);
  const Message = messageType('envoy.service.metrics.v3.StreamMetricsMessage');
  const now = o.now ?? Date.now;
  const reports = o.metrics.counter('inferplane_stats_reports_total', 'Envoy stats reports received, by outcome');
  const refused = o.metrics.counter('inferplane_stats_gauges_refused_total', 'Implausible active-request gauges refused');
  const open = new Map<string, number>();
  const definition: grpc.ServiceDefinition = {
    StreamMetrics: {
      path: '/envoy.service.metrics.v3.MetricsService/StreamMetrics',
      requestStream: true,
      responseStream: false,
      requestSerialize: () => Buffer.alloc(0),
      requestDeserialize: (b: Buffer) => {
        try {
          return Message.toObject(Message.decode(b), { enums: String, longs: Number }) as StreamMetricsMessage;
        } catch (e) {
          return { malformed: e instanceof Error ? e.message : String(e) };
        }
      },
      // StreamMetricsResponse has no fields: its encoding is empty.
      responseSerialize: () => Buffer.alloc(0),
      responseDeserialize: () => ({}),
      originalName: 'streamMetrics',
    },
  };
  const handlers: grpc.UntypedServiceImplementation = {
    StreamMetrics: ((call: grpc.ServerReadableStream<StreamMetricsMessage | { malformed: string }, object>, callback: grpc.sendUnaryData<object>) => {
      let nodeId: string | undefined;
      let done = false;
      const finish = (e: grpc.ServiceError | null) => {
        if (done) return;
        done = true;
        if (nodeId) open.set(nodeId, (open.get(nodeId) ?? 1) - 1);
        callback(e, e ? undefined : {});
      };
      const fail = (details: string) => {
        reports.inc({ outcome: 'invalid' });
        o.log.warn('closing metrics stream', { node: nodeId, details });
        finish(Object.assign(new Error(details), { code: grpc.status.INVALID_ARGUMENT, details, metadata: new grpc.Metadata() }));
        call.destroy();
      };
      call.on('data', (msg) => {
        if (done) return;
        if ('malformed' in msg) return fail(`cannot decode envoy.service.metrics.v3.StreamMetricsMessage: ${msg.malformed}`);
        if (!nodeId) {
          const id = msg.identifier?.node?.id;
          if (!id) return fail('the first StreamMetricsMessage must carry identifier.node.id');
          nodeId = id;
          const streams = (open.get(id) ?? 0) + 1;
          open.set(id, streams);
          if (streams > 1) o.log.warn('two live metrics streams share a node id; the latest report wins', { node: id });
        }
        const { active, rejected } = activeByCluster(gaugesOf(msg.envoy_metrics ?? []));
        if (rejected.length > 0) {
          refused.inc({}, rejected.length);
          o.log.warn('refused implausible gauges', { node: nodeId, rejected });
        }
        reports.inc({ outcome: o.stats.record(nodeId!, now(), active) });
      });
      call.on('end', () => finish(null));
      call.on('error', () => finish(null));
    }) as grpc.handleClientStreamingCall<StreamMetricsMessage | { malformed: string }, object>,
  };
  return { definition, handlers };
}
