import type { PeerCertificate } from 'node:tls';
import { status as Status } from '@grpc/grpc-js';
import type { GrpcService } from '../grpc/server.js';
import type { Call, CallHandler } from '../grpc/http2.js';
import { checkIdentity, type IdentityRule } from '../xds/identity.js';
import type { Logger } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import { loadEnvoyProtos, messageType } from '../xds/protos.js';
import { MAX_NODE_FIELD } from '../xds/stream.js';
import { forEachLengthDelimited } from '../xds/wire.js';
import { ACTIVE_GAUGE, activeByCluster, gaugesOf, type FleetStats, type MetricFamilyMessage } from './stats.js';

/** Node ids of inferplane replicas forwarding their Envoys' sums to the scaler leader (see relay.ts). */
export const RELAY_NODE_PREFIX = 'inferplane-relay:';
/** The gauges a relay adds to its report: how many Envoys its sums cover, and the age of the oldest report. */
export const RELAY_ENVOYS = 'inferplane.relay.envoys';
export const RELAY_OLDEST_AGE_MS = 'inferplane.relay.oldest_report_age_ms';

interface StreamMetricsMessage {
  identifier?: { node?: { id?: string; cluster?: string } | null } | null;
  envoy_metrics?: MetricFamilyMessage[];
  /** The flush time Envoy stamps on every metric of one flush (the first metric's `timestamp_ms`). */
  timestampMs?: number;
}

/** A message refused before decoding. */
interface Refused {
  /** The outcome it is counted under. */
  readonly refused: 'invalid' | 'too-large';
  readonly details: string;
}

import { DEFAULT_MAX_STATS_MESSAGE_BYTES } from '../config/defaults.js';
/** Default of `maxMessageBytes` in {@link createMetricsService}. */
export { DEFAULT_MAX_STATS_MESSAGE_BYTES };

let Identifier: ReturnType<typeof messageType> | undefined;
let Family: ReturnType<typeof messageType> | undefined;

/** Metric family names the scaler reads; every other family is skipped undecoded. */
function wanted(name: string): boolean {
  return name.endsWith(ACTIVE_GAUGE) || name.startsWith('inferplane.relay.');
}

/**
 * Decodes a StreamMetricsMessage (field numbers from envoy/service/metrics/v3/metrics_service.proto:
 * identifier 1, envoy_metrics 2; MetricFamily.name 1 in io/prometheus/client/metrics.proto), decoding only
 * the metric families the scaler reads. An Envoy without a stats matcher flushes every stat it has (hundreds of
 * families, tens of kilobytes) each interval; reading just the names of the others keeps that cheap.
 */
export function decodeStreamMetrics(buf: Buffer): StreamMetricsMessage {
  if (!Identifier || !Family) {
    loadEnvoyProtos(['envoy/service/metrics/v3/metrics_service.proto']);
    Identifier = messageType('envoy.service.metrics.v3.StreamMetricsMessage.Identifier');
    Family = messageType('io.prometheus.client.MetricFamily');
  }
  let identifier: StreamMetricsMessage['identifier'] = null;
  const families: MetricFamilyMessage[] = [];
  let first: [number, number] | undefined;
  forEachLengthDelimited(buf, 0, buf.length, (field, start, end) => {
    if (field === 1) identifier = Identifier!.toObject(Identifier!.decode(buf.subarray(start, end))) as StreamMetricsMessage['identifier'];
    if (field !== 2) return;
    first ??= [start, end];
    let name: string | undefined;
    forEachLengthDelimited(buf, start, end, (f, s, e) => {
      if (f === 1 && name === undefined) name = buf.toString('utf8', s, e);
    });
    if (name !== undefined && wanted(name)) families.push(decodeFamily(buf.subarray(start, end)));
  });
  // Every metric of one flush carries the same timestamp: it tells the parts of a batched flush apart.
  const stamped = families[0] ?? (first && decodeFamily(buf.subarray(first[0], first[1])));
  const timestampMs = Number(stamped?.metric?.[0]?.timestamp_ms ?? 0) || undefined;
  return { identifier, envoy_metrics: families, ...(timestampMs !== undefined && { timestampMs }) };
}

function decodeFamily(bytes: Buffer): MetricFamilyMessage {
  return Family!.toObject(Family!.decode(bytes), { enums: String, longs: Number }) as MetricFamilyMessage;
}

/**
 * Envoy's `envoy.service.metrics.v3.MetricsService`: Envoys configured with the
 * `envoy.stat_sinks.metrics_service` sink stream their stats every flush interval; each message's
 * `upstream_rq_active` gauges are recorded in `stats` under the stream's node id (sent on its first message).
 * Undecodable messages and a first message without a node id end the stream with INVALID_ARGUMENT;
 * implausible gauges are refused and counted; a second live stream with the same node id is reported (its
 * reports replace the first's, so a misconfigured fleet is not double counted). When a node's last stream
 * ends its report is forgotten: an Envoy that moved to another replica is counted there, not twice.
 * Streams from other inferplane replicas (node id `inferplane-relay:<identity>`) carry the sums of their own
 * Envoys with the {@link RELAY_ENVOYS} and {@link RELAY_OLDEST_AGE_MS} gauges, and count as that many Envoys.
 */
export function createMetricsService(o: {
  stats: FleetStats; log: Logger; metrics: Metrics; now?: () => number; maxMessageBytes?: number;
  /**
   * Node identity (mTLS): an Envoy's stats count only under the id its certificate proves; a relay
   * (`inferplane-relay:…`) must present a certificate `isReplica` accepts.
   */
  identity?: { rule: IdentityRule; isReplica: (certificate: PeerCertificate | undefined) => boolean };
}): GrpcService {
  loadEnvoyProtos(['envoy/service/metrics/v3/metrics_service.proto']);
  const now = o.now ?? Date.now;
  const maxMessageBytes = o.maxMessageBytes ?? DEFAULT_MAX_STATS_MESSAGE_BYTES;
  const reports = o.metrics.counter('inferplane_stats_reports_total', 'Envoy stats reports received, by outcome', ['outcome'], ['recorded', 'throttled', 'invalid', 'too-large', 'denied'].map((outcome) => ({ outcome })));
  // Bound once: the label text is not rebuilt for each of thousands of reports a second.
  const counted = { recorded: reports.bind({ outcome: 'recorded' }), throttled: reports.bind({ outcome: 'throttled' }) };
  const refused = o.metrics.counter('inferplane_stats_gauges_refused_total', 'Implausible active-request gauges refused');
  const open = new Map<string, number>();
  const live = new Set<(e: { code: number; details: string } | null) => void>();
  const decode = (b: Buffer): StreamMetricsMessage | Refused => {
    try {
      return decodeStreamMetrics(b);
    } catch (e) {
      return { refused: 'invalid', details: `cannot decode envoy.service.metrics.v3.StreamMetricsMessage: ${e instanceof Error ? e.message : String(e)}` };
    }
  };
  const start = (call: Call): CallHandler => {
    let nodeId: string | undefined;
    let done = false;
    let throttleLogged = false;
    const finish = (e: { code: number; details: string } | null) => {
      if (done) return;
      done = true;
      live.delete(finish);
      if (nodeId) {
        const left = (open.get(nodeId) ?? 1) - 1;
        if (left > 0) open.set(nodeId, left);
        else {
          open.delete(nodeId);
          o.stats.forget(nodeId);
        }
      }
      if (e) return call.end(e.code, e.details);
      // StreamMetricsResponse has no fields: its encoding is empty.
      call.write(Buffer.alloc(0));
      call.end(Status.OK);
    };
    const fail = (details: string, outcome: Refused['refused'] | 'denied' = 'invalid') => {
      reports.inc({ outcome });
      o.log.warn('closing metrics stream', { node: nodeId, peer: call.peer, details });
      const code = outcome === 'too-large' ? Status.RESOURCE_EXHAUSTED : outcome === 'denied' ? Status.PERMISSION_DENIED : Status.INVALID_ARGUMENT;
      finish({ code, details });
    };
    live.add(finish);
    const onMessage = (msg: StreamMetricsMessage | Refused) => {
      if (done) return;
      if ('refused' in msg) return fail(msg.details, msg.refused);
      if (!nodeId) {
        const id = msg.identifier?.node?.id;
        if (!id) return fail('the first StreamMetricsMessage must carry identifier.node.id');
        if (id.length > MAX_NODE_FIELD) return fail(`identifier.node.id is ${id.length} characters; the limit is ${MAX_NODE_FIELD}`);
        if (o.identity) {
          const certificate = call.peerCertificate;
          const denied = id.startsWith(RELAY_NODE_PREFIX)
            ? (o.identity.isReplica(certificate) ? undefined : `relay "${id}" did not present an inferplane replica's certificate`)
            : checkIdentity(o.identity.rule, certificate, { id, cluster: msg.identifier?.node?.cluster ?? '' });
          if (denied) {
            o.metrics.counter('inferplane_identity_rejections_total', 'Streams refused because the client certificate does not prove the node identity, by service', ['service']).inc({ service: 'metrics' });
            return fail(denied, 'denied');
          }
        }
        nodeId = id;
        const streams = (open.get(id) ?? 0) + 1;
        open.set(id, streams);
        if (streams > 1) o.log.warn('two live metrics streams share a node id; the latest report wins', { node: id });
      }
      const gauges = gaugesOf(msg.envoy_metrics ?? []);
      const { active, rejected, rejectedClusters } = activeByCluster(gauges);
      if (rejected.length > 0) {
        refused.inc({}, rejected.length);
        o.log.warn('refused implausible gauges', { node: nodeId, rejected });
      }
      let relayed: { envoys: number; oldestAt: number } | undefined;
      const at = now();
      if (nodeId!.startsWith(RELAY_NODE_PREFIX)) {
        const envoys = gauges.find((g) => g.name === RELAY_ENVOYS)?.value;
        const age = gauges.find((g) => g.name === RELAY_OLDEST_AGE_MS)?.value;
        if (!Number.isInteger(envoys) || envoys! < 1 || !Number.isFinite(age) || age! < 0) return fail(`a relay report needs ${RELAY_ENVOYS} (a whole number ≥ 1) and ${RELAY_OLDEST_AGE_MS} (≥ 0)`);
        relayed = { envoys: envoys!, oldestAt: at - age! };
      }
      const outcome = o.stats.record(nodeId!, at, active, { ...(relayed && { relayed }), keep: rejectedClusters, ...(msg.timestampMs !== undefined && { flush: msg.timestampMs }) });
      counted[outcome]();
      if (outcome === 'throttled' && !throttleLogged) {
        throttleLogged = true;
        o.log.warn('dropping stats reports that arrive faster than one flush per 200 ms (counted in inferplane_stats_reports_total{outcome="throttled"}); is stats_flush_interval that short?', { node: nodeId });
      }
    };
    return {
      message: (b) => onMessage(decode(b)),
      oversized: (bytes) =>
        onMessage({ refused: 'too-large', details: `a ${bytes}-byte stats message is over the ${maxMessageBytes}-byte limit (--max-stats-message-bytes); raise it, or set batch_size on the Envoy's metrics_service sink, or keep fewer stats with stats_config.stats_matcher` }),
      halfClosed: () => finish(null),
      cancelled: () => finish(null),
      drain: () => {},
    };
  };
  const close = () => {
    for (const finish of [...live]) finish({ code: Status.UNAVAILABLE, details: 'inferplane is shutting down; reconnect' });
  };
  return { methods: [{ path: '/envoy.service.metrics.v3.MetricsService/StreamMetrics', maxMessageBytes, start }], close };
}
