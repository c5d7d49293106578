import type { Cluster } from '../generated/envoy/config/cluster/v3/Cluster.js';
import { clusterName, type Service, type ServicePort } from '../model/model.js';
import { TypeUrl } from '../xds/resources.js';
import { ADS_SOURCE, duration, typed, type ResourceSpec } from './common.js';

/**
 * One EDS cluster per service port. Load balancing (unless the service asks for round robin alone) lists
 * least_request (choice_count 2: power of two choices) first and round_robin second: Envoy takes the first it supports, and proxyless gRPC clients, which lack
 * least_request, fall back instead of rejecting the cluster. Host weights are left equal because Envoy only
 * runs P2C while all weights are equal; slow start is only set when asked for, since it has the same effect.
 */
export function clusters(services: readonly Service[]): ResourceSpec[] {
  return services.flatMap((s) => s.ports.map((p) => clusterOf(s, p)));
}

function clusterOf(s: Service, port: ServicePort): ResourceSpec {
  const name = clusterName(s.name, port.name);
  const st = s.settings;
  const slowStart = st.slowStart && {
    slow_start_config: { slow_start_window: duration(st.slowStart.windowMs), aggression: { default_value: st.slowStart.aggression, runtime_key: `inferplane.${name}.slow_start_aggression` } },
  };
  const leastRequest = { choice_count: { value: 2 }, ...slowStart };
  const value: Cluster = {
    name,
    type: 'EDS',
    eds_cluster_config: { eds_config: ADS_SOURCE, service_name: name },
    connect_timeout: duration(st.connectTimeoutMs),
    load_balancing_policy: {
      policies: [
        ...(st.loadBalancing === 'least-request'
          ? [{ typed_extension_config: { name: 'envoy.load_balancing_policies.least_request', typed_config: typed('envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest', leastRequest) } }]
          : []),
        { typed_extension_config: { name: 'envoy.load_balancing_policies.round_robin', typed_config: typed('envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin', { ...slowStart }) } },
      ],
    },
    circuit_breakers: {
      thresholds: [{
        max_connections: { value: st.circuitBreakers.maxConnections },
        max_pending_requests: { value: st.circuitBreakers.maxPendingRequests },
        max_requests: { value: st.circuitBreakers.maxRequests },
        retry_budget: { budget_percent: { value: st.retries.budgetPercent }, min_retry_concurrency: { value: st.retries.minRetryConcurrency } },
      }],
    },
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': typed('envoy.extensions.upstreams.http.v3.HttpProtocolOptions', {
        explicit_http_config: port.protocol === 'http2' ? { http2_protocol_options: {} } : { http_protocol_options: {} },
      }),
    },
    ...(st.outlierDetection && {
      outlier_detection: {
        consecutive_5xx: { value: st.outlierDetection.consecutive5xx },
        interval: duration(st.outlierDetection.intervalMs),
        base_ejection_time: duration(st.outlierDetection.baseEjectionTimeMs),
        max_ejection_percent: { value: st.outlierDetection.maxEjectionPercent },
      },
    }),
    ...(st.healthCheck && {
      health_checks: [{
        timeout: duration(st.healthCheck.timeoutMs),
        interval: duration(st.healthCheck.intervalMs),
        unhealthy_threshold: { value: st.healthCheck.unhealthyThreshold },
        healthy_threshold: { value: st.healthCheck.healthyThreshold },
        http_health_check: { path: st.healthCheck.path, ...(port.protocol === 'http2' && { codec_client_type: 'HTTP2' as const }) },
      }],
    }),
  };
  return { typeUrl: TypeUrl.Cluster, name, value, wildcard: true };
}
