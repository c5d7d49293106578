// Original file: node_modules/@grpc/grpc-js-xds/deps/envoy-api/envoy/service/endpoint/v3/eds.proto


export interface EdsDummy {
}

export interface EdsDummy__Output {
}
