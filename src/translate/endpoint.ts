import type { ClusterLoadAssignment } from '../generated/envoy/config/endpoint/v3/ClusterLoadAssignment.js';
import type { LbEndpoint } from '../generated/envoy/config/endpoint/v3/LbEndpoint.js';
import { clusterName, type Endpoint, type Service } from '../model/model.js';
import { TypeUrl } from '../xds/resources.js';
import type { ResourceSpec } from './common.js';

/** One ClusterLoadAssignment per service port; see {@link loadAssignment}. */
export function endpoints(services: readonly Service[]): ResourceSpec[] {
  return services.flatMap((s) => s.ports.map((p) => loadAssignment(s, p.name)));
}

/** Envoy health for an endpoint, or null if it must not be listed at all. */
export function healthOf(e: Endpoint): 'HEALTHY' | 'DRAINING' | null {
  if (e.terminating) return e.serving ? 'DRAINING' : null;
  return e.ready ? 'HEALTHY' : null;
}

/**
 * The assignment of one service port: endpoints grouped by zone (the locality), ready ones HEALTHY, terminating
 * but still serving ones DRAINING (Envoy sends them no new requests while in-flight ones finish), the rest
 * left out. Every locality carries a weight (its endpoint count): Envoy ignores locality weights unless told
 * to use them, while gRPC's xDS client drops a locality without one (and NACKs one with no locality at all).
 * With `localZone` (the view of a client in that zone), the other zones are priority 1 while the local zone
 * has a ready endpoint.
 */
export function loadAssignment(s: Service, port: string, localZone?: string): ResourceSpec {
  const name = clusterName(s.name, port);
  const byZone = new Map<string, LbEndpoint[]>();
  for (const e of s.endpoints) {
    const portValue = e.ports[port];
    const health = healthOf(e);
    if (portValue === undefined || health === null) continue;
    let list = byZone.get(e.zone);
    if (!list) byZone.set(e.zone, (list = []));
    list.push({ endpoint: { address: { socket_address: { address: e.address, port_value: portValue } } }, health_status: health, ...(e.weight !== undefined && { load_balancing_weight: { value: e.weight } }) });
  }
  const zones = [...byZone.keys()].sort();
  // The local zone first, the rest as spillover, while the local zone has a ready endpoint and there is
  // somewhere to spill to; Envoy moves traffic on as the local zone's health drops, gRPC when it has none.
  const split = localZone !== undefined && zones.length > 1 && (byZone.get(localZone)?.some((e) => e.health_status === 'HEALTHY') ?? false);
  const value: ClusterLoadAssignment = {
    cluster_name: name,
    endpoints: zones.map((zone) => {
      const lb = byZone.get(zone)!;
      // Always present, even empty: gRPC's xDS client rejects an assignment whose locality is unset.
      return { locality: zone ? { zone } : {}, lb_endpoints: lb, load_balancing_weight: { value: lb.length }, ...(split && zone !== localZone && { priority: 1 }) };
    }),
  };
  return { typeUrl: TypeUrl.Endpoint, name, value, wildcard: true };
}
