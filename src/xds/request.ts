import type { Node__Output } from '../generated/envoy/config/core/v3/Node.js';
import type { DeltaDiscoveryRequest__Output } from '../generated/envoy/service/discovery/v3/DeltaDiscoveryRequest.js';
import type { DiscoveryRequest__Output } from '../generated/envoy/service/discovery/v3/DiscoveryRequest.js';
import type { Status__Output } from '../generated/google/rpc/Status.js';
import { messageType } from './protos.js';
import { forEachLengthDelimited } from './wire.js';
import type { MalformedRequest } from './stream.js';

/** A decoded SotW request, plus the raw bytes of its `resource_names` for cheap "same as last time" checks. */
export interface SotwRequest extends DiscoveryRequest__Output {
  /**
   * The bytes of the request's `resource_names` entries (undefined when there are none or they are not
   * contiguous). Equal bytes mean an equal list: an ACK repeating its subscription is recognised without
   * decoding a single name. A view into the request buffer: copy it to keep it.
   */
  readonly names_key: Buffer | undefined;
  /** How many `resource_names` entries the request has, known without decoding them. */
  readonly names_count: number;
}

/** The raw `resource_names` bytes of a subscription a stream holds (see SotwRequest.names_key), and how many names. */
export interface KnownNames {
  readonly key: Buffer;
  readonly count: number;
}

/** The tag byte of a `resource_names` entry (field 3, length-delimited). */
const NAME_TAG = 0x1a;

const NodeType = messageType('envoy.config.core.v3.Node');
const DeltaType = messageType('envoy.service.discovery.v3.DeltaDiscoveryRequest');
const StatusType = messageType('google.rpc.Status');

let decodersWarm = false;

/**
 * Decodes one request of each kind, with a node that fills every nested message Envoy and gRPC clients send,
 * once per process. protobufjs generates a message type's code on its first use: without this, the first
 * streams to connect paid for it (11 ms measured) in the turn of the event loop that handles their requests.
 */
export function warmDecoders(): void {
  if (decodersWarm) return;
  decodersWarm = true;
  const node = {
    id: 'warm-up', cluster: 'warm-up', user_agent_name: 'envoy', user_agent_build_version: { version: { major_number: 1 }, metadata: { fields: { a: { stringValue: 'b' } } } },
    metadata: { fields: { s: { stringValue: 'x' }, n: { numberValue: 1 }, b: { boolValue: true }, z: { nullValue: 'NULL_VALUE' }, l: { listValue: { values: [{ stringValue: 'x' }] } }, o: { structValue: { fields: {} } } } },
    locality: { region: 'r', zone: 'z', sub_zone: 's' }, client_features: ['f'],
    extensions: [{ name: 'e', category: 'c', version: { version: { major_number: 1 } }, type_urls: ['t'] }],
    listening_addresses: [{ socket_address: { address: '127.0.0.1', port_value: 1 } }],
  };
  const error_detail = { code: 3, message: 'm', details: [{ type_url: 'type.googleapis.com/google.rpc.Status', value: Buffer.alloc(0) }] };
  const SotwType = messageType('envoy.service.discovery.v3.DiscoveryRequest');
  const sotw = Buffer.from(SotwType.encode(SotwType.fromObject({ version_info: 'v', node, resource_names: ['a'], type_url: 't', response_nonce: 'n', error_detail })).finish());
  const delta = Buffer.from(DeltaType.encode(DeltaType.fromObject({
    node, type_url: 't', resource_names_subscribe: ['a'], resource_names_unsubscribe: ['b'], initial_resource_versions: { a: '1' }, response_nonce: 'n', error_detail,
  })).finish());
  const decoded = [decodeDiscoveryRequest(sotw), decodeDeltaDiscoveryRequest(delta)];
  for (const r of decoded) if ('malformed' in r) throw new Error(`warming the request decoders: ${r.malformed}`);
  if ((decoded[0] as SotwRequest).resource_names.length !== 1) throw new Error('warming the request decoders: resource_names not read');
}

/**
 * Decodes `envoy.service.discovery.v3.DiscoveryRequest` (field numbers from discovery.proto: version_info 1,
 * node 2, resource_names 3, type_url 4, response_nonce 5, error_detail 6; others skipped). `node` and
 * `error_detail` are decoded with Envoy's protos; `resource_names` is decoded on first read. Envoy ACKs
 * repeat every subscribed name, so on a fleet of Envoys each subscribed to a thousand assignments this is
 * most of the server's work per change unless the names are skipped when unchanged. Names that are one of the
 * `known` subscriptions, byte for byte, are recognised by one comparison instead of a walk over each name.
 */
export function decodeDiscoveryRequest(buf: Buffer, known: readonly KnownNames[] = []): SotwRequest | MalformedRequest {
  try {
    let version_info = '';
    let type_url = '';
    let response_nonce = '';
    let node: Node__Output | null = null;
    let error_detail: Status__Output | null = null;
    let count = 0;
    let keyStart = -1;
    let keyEnd = -1;
    let contiguous = true;
    forEachLengthDelimited(buf, 0, buf.length, (field, start, end, tagAt) => {
      switch (field) {
        case 1: version_info = buf.toString('utf8', start, end); break;
        case 2: node = NodeType.decode(buf.subarray(start, end)) as unknown as Node__Output; break;
        case 3:
          if (keyStart < 0) {
            keyStart = tagAt;
            // A subscription this stream already holds, byte for byte: skip its names in one comparison.
            for (const k of known) {
              const stop = tagAt + k.key.length;
              if (stop <= buf.length && buf[stop] !== NAME_TAG && buf.compare(k.key, 0, k.key.length, tagAt, stop) === 0) {
                keyEnd = stop;
                count = k.count;
                return stop;
              }
            }
          } else if (keyEnd !== tagAt) contiguous = false;
          keyEnd = end;
          count++;
          break;
        case 4: type_url = buf.toString('utf8', start, end); break;
        case 5: response_nonce = buf.toString('utf8', start, end); break;
        case 6: error_detail = StatusType.decode(buf.subarray(start, end)) as unknown as Status__Output; break;
        default: break;
      }
    });
    let decoded: string[] | undefined;
    // Names are only decoded when a subscription actually changed: a second pass over the bytes.
    const decodeNames = (): string[] => {
      const out: string[] = [];
      forEachLengthDelimited(buf, 0, buf.length, (field, start, end) => {
        if (field === 3) out.push(buf.toString('utf8', start, end));
      });
      return out;
    };
    return {
      version_info,
      node,
      type_url,
      response_nonce,
      error_detail,
      resource_locators: [],
      names_key: keyStart >= 0 && contiguous ? buf.subarray(keyStart, keyEnd) : undefined,
      names_count: count,
      get resource_names() {
        return (decoded ??= decodeNames());
      },
    };
  } catch (e) {
    return { malformed: `cannot decode envoy.service.discovery.v3.DiscoveryRequest: ${e instanceof Error ? e.message : String(e)}` };
  }
}

/**
 * Decodes `envoy.service.discovery.v3.DeltaDiscoveryRequest` into a protobufjs message, or says why it cannot.
 * Absent fields read as proto3 defaults ('', [], {}, null for messages) from the prototype, which is all the
 * streams need; skipping toObject keeps ACKs cheap.
 */
export function decodeDeltaDiscoveryRequest(buf: Buffer): DeltaDiscoveryRequest__Output | MalformedRequest {
  try {
    return DeltaType.decode(buf) as unknown as DeltaDiscoveryRequest__Output;
  } catch (e) {
    return { malformed: `cannot decode envoy.service.discovery.v3.DeltaDiscoveryRequest: ${e instanceof Error ? e.message : String(e)}` };
  }
}
