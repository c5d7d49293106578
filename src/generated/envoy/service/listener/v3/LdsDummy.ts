// Original file: node_modules/@grpc/grpc-js-xds/deps/envoy-api/envoy/service/listener/v3/lds.proto


export interface LdsDummy {
}

export interface LdsDummy__Output {
}
