// Original file: node_modules/@grpc/grpc-js-xds/deps/envoy-api/envoy/service/cluster/v3/cds.proto


export interface CdsDummy {
}

export interface CdsDummy__Output {
}
