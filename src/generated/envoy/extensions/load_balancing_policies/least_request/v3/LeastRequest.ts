// Original file: proto/vendor/envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto

import type { UInt32Value as _google_protobuf_UInt32Value, UInt32Value__Output as _google_protobuf_UInt32Value__Output } from '../../../../../google/protobuf/UInt32Value';
import type { RuntimeDouble as _envoy_config_core_v3_RuntimeDouble, RuntimeDouble__Output as _envoy_config_core_v3_RuntimeDouble__Output } from '../../../../../envoy/config/core/v3/RuntimeDouble';
import type { SlowStartConfig as _envoy_extensions_load_balancing_policies_common_v3_SlowStartConfig, SlowStartConfig__Output as _envoy_extensions_load_balancing_policies_common_v3_SlowStartConfig__Output } from '../../../../../envoy/extensions/load_balancing_policies/common/v3/SlowStartConfig';
import type { LocalityLbConfig as _envoy_extensions_load_balancing_policies_common_v3_LocalityLbConfig, LocalityLbConfig__Output as _envoy_extensions_load_balancing_policies_common_v3_LocalityLbConfig__Output } from '../../../../../envoy/extensions/load_balancing_policies/common/v3/LocalityLbConfig';
import type { BoolValue as _google_protobuf_BoolValue, BoolValue__Output as _google_protobuf_BoolValue__Output } from '../../../../../google/protobuf/BoolValue';

// Original file: proto/vendor/envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto

export const _envoy_extensions_load_balancing_policies_least_request_v3_LeastRequest_SelectionMethod = {
  N_CHOICES: 'N_CHOICES',
  FULL_SCAN: 'FULL_SCAN',
} as const;

export type _envoy_extensions_load_balancing_policies_least_request_v3_LeastRequest_SelectionMethod =
  | 'N_CHOICES'
  | 0
  | 'FULL_SCAN'
  | 1

export type _envoy_extensions_load_balancing_policies_least_request_v3_LeastRequest_SelectionMethod__Output = typeof _envoy_extensions_load_balancing_policies_least_request_v3_LeastRequest_SelectionMethod[keyof typeof _envoy_extensions_load_balancing_policies_least_request_v3_LeastRequest_SelectionMethod]

export interface LeastRequest {
  'choice_count'?: (_google_protobuf_UInt32Value | null);
  'active_request_bias'?: (_envoy_config_core_v3_RuntimeDouble | null);
  'slow_start_config'?: (_envoy_extensions_load_balancing_policies_common_v3_SlowStartConfig | null);
  'locality_lb_config'?: (_envoy_extensions_load_balancing_policies_common_v3_LocalityLbConfig | null);
  'enable_full_scan'?: (_google_protobuf_BoolValue | null);
  'selection_method'?: (_envoy_extensions_load_balancing_policies_least_request_v3_LeastRequest_SelectionMethod);
}

export interface LeastRequest__Output {
  'choice_count': (_google_protobuf_UInt32Value__Output | null);
  'active_request_bias': (_envoy_config_core_v3_RuntimeDouble__Output | null);
  'slow_start_config': (_envoy_extensions_load_balancing_policies_common_v3_SlowStartConfig__Output | null);
  'locality_lb_config': (_envoy_extensions_load_balancing_policies_common_v3_LocalityLbConfig__Output | null);
  'enable_full_scan': (_google_protobuf_BoolValue__Output | null);
  'selection_method': (_envoy_extensions_load_balancing_policies_least_request_v3_LeastRequest_SelectionMethod__Output);
}
