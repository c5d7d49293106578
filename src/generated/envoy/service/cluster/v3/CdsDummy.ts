// Original file: proto/vendor/envoy/service/cluster/v3/cds.proto


export interface CdsDummy {
}

export interface CdsDummy__Output {
}
