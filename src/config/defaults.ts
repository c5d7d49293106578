/** Port of the xDS gRPC server unless `--xds-address` says otherwise; the bootstraps in envoy/ point here. */
export const DEFAULT_XDS_PORT = 18000;

/** Port of the admin HTTP server unless `--admin-address` says otherwise. */
export const DEFAULT_ADMIN_PORT = 19000;

/**
 * Defaults the command line prints in its usage as well as applies. They live here, apart from the modules that
 * use them, so that `inferplane --help` and the light commands load none of those modules (start-up budget:
 * `npm run bench -- --only startup`).
 */

/** Label selector choosing the Services inferplane serves, unless told otherwise. */
export const DEFAULT_SERVICE_SELECTOR = 'inferplane.io/serve=true';

/** Default quiet time that ends a burst of events, and the longest any event waits under steady churn. */
export const DEFAULT_DEBOUNCE = { holdOffMs: 50, maxDelayMs: 250 } as const;

/**
 * Largest DiscoveryResponse sent by default: gRPC's default receive limit (grpc-js, grpc-go, Envoy's Google gRPC
 * client). A client given more drops the stream and reconnects into the same response, forever.
 */
export const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/** Default limits of one xDS stream (xds/stream.ts `StreamLimits` says what each bounds). */
export const DEFAULT_STREAM_LIMITS = { maxNamesPerRequest: 10_000, maxNamesPerStream: 100_000, maxResponseBytes: MAX_RESPONSE_BYTES } as const;

/** Largest Envoy stats message the metrics service accepts unless told otherwise. */
export const DEFAULT_MAX_STATS_MESSAGE_BYTES = 16 * 1024 * 1024;

/** Most requests a per-request (`--mode exact`) simulation run may simulate: beyond this, the aggregate mode is the tool. */
export const MAX_EXACT_REQUESTS = 50_000_000;
