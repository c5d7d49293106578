/** The xDS resource types inferplane serves, by type URL: the one place these strings live. */
export const TypeUrl = {
  Cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  Endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  Listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  Route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
} as const;

/** One of the four served type URLs. */
export type TypeUrl = (typeof TypeUrl)[keyof typeof TypeUrl];

/**
 * Make-before-break order for an ADS stream: clusters first (so routes never name a missing cluster), their
 * endpoints next (a new cluster warms until it has them), then listeners and the routes they load.
 */
export const ADS_ORDER: readonly TypeUrl[] = [TypeUrl.Cluster, TypeUrl.Endpoint, TypeUrl.Listener, TypeUrl.Route];

/**
 * Types whose SotW responses carry the full state (a name missing from a response is deleted by the client).
 * For EDS and RDS a missing name means nothing; their resources die when nothing references them.
 * See the xDS protocol, "Deleting resources".
 */
export const FULL_STATE_TYPES: ReadonlySet<TypeUrl> = new Set([TypeUrl.Cluster, TypeUrl.Listener]);

const BY_URL = new Map<string, TypeUrl>(Object.values(TypeUrl).map((u) => [u, u]));

/** Returns the served type for a type URL from the wire, or undefined if inferplane does not serve it. */
export function parseTypeUrl(url: string): TypeUrl | undefined {
  return BY_URL.get(url);
}

/** The protobuf message name behind a type URL (the part after the last '/'). */
export function messageName(url: string): string {
  return url.slice(url.lastIndexOf('/') + 1);
}

/** Short names used in logs, metrics and the status API. */
export const TYPE_SHORT: Readonly<Record<TypeUrl, 'cds' | 'eds' | 'lds' | 'rds'>> = {
  [TypeUrl.Cluster]: 'cds',
  [TypeUrl.Endpoint]: 'eds',
  [TypeUrl.Listener]: 'lds',
  [TypeUrl.Route]: 'rds',
};
