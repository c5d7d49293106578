import type { Any } from '../generated/google/protobuf/Any.js';
import type { Duration } from '../generated/google/protobuf/Duration.js';
import type { TypeUrl } from '../xds/resources.js';

/** An Envoy resource to serve: its protobuf message as a plain object (the form `encodeStrict` takes). */
export interface ResourceSpec {
  readonly typeUrl: TypeUrl;
  readonly name: string;
  readonly value: object;
  /**
   * Whether a wildcard subscription receives it. Proxyless-gRPC API listeners are served only to clients that
   * name them: an Envoy subscribing to all listeners must not be handed listeners it cannot run.
   */
  readonly wildcard: boolean;
}

/** A protobuf Duration from whole milliseconds; 0 is the empty message (Envoy's "disabled"). */
export function duration(ms: number): Duration {
  const seconds = Math.floor(ms / 1000);
  const nanos = (ms % 1000) * 1_000_000;
  return { ...(seconds ? { seconds: String(seconds) } : {}), ...(nanos ? { nanos } : {}) };
}

/** Packs a typed config as an `Any` in the `{'@type': …}` form that `encodeStrict` expands and checks. */
export function typed(messageName: string, value: object): Any {
  return { '@type': `type.googleapis.com/${messageName}`, ...value } as Any;
}

/** A config source meaning "this resource comes over the same ADS stream". */
export const ADS_SOURCE = { ads: {}, resource_api_version: 'V3' } as const;
