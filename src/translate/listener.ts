import type { Any } from '../generated/google/protobuf/Any.js';
import type { Listener } from '../generated/envoy/config/listener/v3/Listener.js';
import { proxylessName, type ListenerSpec, type Service } from '../model/model.js';
import { TypeUrl } from '../xds/resources.js';
import { ADS_SOURCE, typed, type ResourceSpec } from './common.js';

const HCM = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

function connectionManager(statPrefix: string, routeConfigName: string): Any {
  return typed(HCM, {
    stat_prefix: statPrefix,
    rds: { config_source: ADS_SOURCE, route_config_name: routeConfigName },
    http_filters: [{ name: 'envoy.filters.http.router', typed_config: typed('envoy.extensions.filters.http.router.v3.Router', {}) }],
  });
}

/**
 * The Envoy-facing listener (served to wildcard subscribers) and one API listener per service, named
 * {@link proxylessName}, for proxyless gRPC clients dialling `xds:///<that name>` (served only when named). Each loads
 * its routes over ADS under its own name. Stream-level timeouts live on the routes, so a token stream is
 * never cut while bytes flow.
 */
export function listeners(spec: ListenerSpec, services: readonly Service[]): ResourceSpec[] {
  return [envoyListener(spec), ...apiListeners(services)];
}

/** The Envoy-facing listener alone (see {@link listeners}). */
export function envoyListener(spec: ListenerSpec): ResourceSpec {
  const envoy: Listener = {
    name: spec.name,
    address: { socket_address: { address: spec.address, port_value: spec.port } },
    filter_chains: [{
      filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: connectionManager(spec.name, spec.name) }],
    }],
  };
  return { typeUrl: TypeUrl.Listener, name: spec.name, value: envoy, wildcard: true };
}

/** The proxyless API listeners alone, one per service (see {@link listeners}). */
export function apiListeners(services: readonly Service[]): ResourceSpec[] {
  return services.map((s): ResourceSpec => {
    const name = proxylessName(s.name);
    const value: Listener = { name, api_listener: { api_listener: connectionManager(name, name) } };
    return { typeUrl: TypeUrl.Listener, name, value, wildcard: false };
  });
}
