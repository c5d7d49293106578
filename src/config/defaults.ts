/** Port of the xDS gRPC server unless `--xds-address` says otherwise; the bootstraps in envoy/ point here. */
export const DEFAULT_XDS_PORT = 18000;

/** Port of the admin HTTP server unless `--admin-address` says otherwise. */
export const DEFAULT_ADMIN_PORT = 19000;
