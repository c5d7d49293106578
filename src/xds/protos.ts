import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from '../config/package-root.js';
import protobuf from 'protobufjs';
import { err, ok, type Result } from '../result.js';
import { runSteps, type Steps } from '../steps.js';

const require = createRequire(import.meta.url);

/** This project's own .proto files: wire-compatible definitions Envoy's API packages lack (the Prometheus model). */
const OWN_PROTOS = path.join(PACKAGE_ROOT, 'proto');

/**
 * Envoy's v3 API and its dependencies (xds, validate, googleapis): exactly the files inferplane loads, copied by
 * scripts/sync-protos.ts from the pinned @grpc/grpc-js-xds. Vendored rather than read from that package at run
 * time, because it is a test-only client library: the production package (dev dependencies pruned) must start
 * without it, and shipping a whole xDS client for 85 .proto files would be the wrong trade.
 */
export const VENDOR_DIR = path.join(OWN_PROTOS, 'vendor');

/** Include directories for every .proto file inferplane loads: our own first, then the vendored ones. */
export const ENVOY_PROTO_INCLUDES: readonly string[] = [OWN_PROTOS, VENDOR_DIR];

/** Every .proto file inferplane encodes or decodes, relative to {@link ENVOY_PROTO_INCLUDES}. */
export const ENVOY_PROTO_FILES: readonly string[] = [
  'envoy/service/discovery/v3/discovery.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto',
  'envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto',
];

let cached: protobuf.Root | undefined;

/**
 * The protobufjs root with Envoy's protos, field names kept as in the .proto files (snake_case), loaded once.
 * Google's well-known types come from protobufjs's bundled copies.
 */
export function envoyRoot(): protobuf.Root {
  if (cached) return cached;
  // Like @grpc/proto-loader: register the well-known files protobufjs ships as JSON but not in its defaults.
  for (const name of ['api', 'descriptor', 'source_context', 'type']) {
    const json = require(`protobufjs/google/protobuf/${name}.json`) as { nested: { google: { nested: { protobuf: { nested: protobuf.INamespace['nested'] } } } } };
    protobuf.common(name, json.nested.google.nested.protobuf.nested as Record<string, protobuf.AnyNestedObject>);
  }
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of ENVOY_PROTO_INCLUDES) {
      const candidate = path.join(dir, target);
      if (fsExists(candidate)) return candidate;
    }
    return target; // google/protobuf/* resolves to protobufjs's bundled definitions
  };
  root.loadSync([...ENVOY_PROTO_FILES], { keepCase: true });
  root.resolveAll();
  cached = root;
  return root;
}

function fsExists(p: string): boolean {
  return fs.statSync(p, { throwIfNoEntry: false })?.isFile() ?? false;
}

/**
 * Adds more of Envoy's .proto files (paths relative to {@link ENVOY_PROTO_INCLUDES}) to the shared root, e.g.
 * the Bootstrap message for checking bootstrap files. Loading a file twice is harmless.
 */
export function loadEnvoyProtos(files: readonly string[]): void {
  const root = envoyRoot();
  root.loadSync([...files], { keepCase: true });
  root.resolveAll();
}

/** Looks up a message type by its full name (e.g. `envoy.config.cluster.v3.Cluster`). Throws if unknown. */
export function messageType(fullName: string): protobuf.Type {
  return envoyRoot().lookupType(fullName);
}

/**
 * Encodes a plain object (snake_case fields; enums by name; durations and wrappers as objects; `Any` written
 * as `{'@type': url, ...fields}`) into protobuf bytes, after checking every field against the schema.
 * protobufjs silently drops unknown fields and coerces mistyped ones; this refuses both, so a typo in a
 * builder is a failed snapshot with a path, not a field Envoy never sees.
 */
export function encodeStrict(fullName: string, value: unknown): Result<Uint8Array> {
  return runSteps(encodeStrictSteps(fullName, value));
}

/**
 * Nodes (object keys and list items) beyond which a message is encoded in parts: about a millisecond of
 * checking and encoding.
 */
const PART_NODES = 2000;

/**
 * {@link encodeStrict} as steps (see src/steps.ts). A small message is checked and encoded at once; a large
 * one (the Envoy route table of thousands of services, an assignment of thousands of endpoints) a field at a
 * time, its long lists of messages one element at a time, yielding between them. The bytes are the same
 * either way: fields go out in field-number order, as protobufjs writes them, and each list element as the
 * tag and length-prefixed message protobufjs would write.
 */
export function* encodeStrictSteps(fullName: string, value: unknown): Steps<Result<Uint8Array>> {
  const parts: Uint8Array[] = [];
  const problem = yield* encodeParts(messageType(fullName), value, fullName, parts);
  if (problem) return err(problem);
  return ok(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
}

function* encodeParts(type: protobuf.Type, value: unknown, where: string, out: Uint8Array[]): Steps<string | undefined> {
  if (isAny(type) || !exceeds(value, PART_NODES)) {
    const problem = checkMessage(type, value, where);
    if (problem) return problem;
    out.push(type.encode(type.fromObject(value as Record<string, unknown>)).finish());
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return `${where}: expected a ${type.fullName.slice(1)} object`;
  const obj = value as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!type.fields[key]) return `${where}.${key}: no such field in ${type.fullName.slice(1)}`;
  }
  // Consecutive ordinary fields go out together; each long list of messages goes out element by element.
  let run: Record<string, unknown> = {};
  const flush = (): string | undefined => {
    if (Object.keys(run).length === 0) return undefined;
    const problem = checkMessage(type, run, where);
    if (problem) return problem;
    out.push(type.encode(type.fromObject(run)).finish());
    run = {};
    return undefined;
  };
  for (const field of [...type.fieldsArray].sort((a, b) => a.id - b.id)) {
    const v = obj[field.name];
    if (v === undefined) continue;
    const element = field.resolvedType;
    if (!field.repeated || field.map || !(element instanceof protobuf.Type) || !Array.isArray(v)) {
      run[field.name] = v;
      continue;
    }
    const problem = flush();
    if (problem) return problem;
    for (let i = 0; i < v.length; i++) {
      const inner: Uint8Array[] = [];
      const p = yield* encodeParts(element, v[i], `${where}.${field.name}[${i}]`, inner);
      if (p) return p;
      const length = inner.reduce((n, b) => n + b.length, 0);
      out.push(protobuf.Writer.create().uint32(((field.id << 3) | 2) >>> 0).uint32(length).finish(), ...inner);
      yield;
    }
  }
  return flush();
}

/** True when `value` has more than `limit` nodes; stops counting there, so it costs at most `limit` visits. */
function exceeds(value: unknown, limit: number): boolean {
  let budget = limit;
  const visit = (v: unknown): boolean => {
    if (typeof v !== 'object' || v === null || v instanceof Uint8Array) return false;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (--budget < 0 || visit(child)) return true;
    }
    return false;
  };
  return visit(value);
}

/** Decodes bytes into the same plain-object form {@link encodeStrict} takes (Any expanded with `@type`). */
export function decodeToObject(fullName: string, bytes: Uint8Array): Record<string, unknown> {
  const type = messageType(fullName);
  return type.toObject(type.decode(bytes), { json: true, enums: String, longs: String, bytes: String });
}

const INT_TYPES = new Set(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32']);
const LONG_TYPES = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);

let anyType: protobuf.Type | undefined;

/** Whether `type` is google.protobuf.Any; by identity, because `fullName` is rebuilt from the parents on every read. */
function isAny(type: protobuf.Type): boolean {
  return type === (anyType ??= messageType('google.protobuf.Any'));
}

function checkMessage(type: protobuf.Type, value: unknown, where: string): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return `${where}: expected a ${type.fullName.slice(1)} object`;
  }
  const obj = value as Record<string, unknown>;
  if (isAny(type)) {
    const url = obj['@type'];
    if (typeof url !== 'string') return `${where}: Any needs '@type'`;
    const inner = envoyRoot().lookup(url.slice(url.lastIndexOf('/') + 1));
    if (!(inner instanceof protobuf.Type)) return `${where}: unknown '@type' ${url}`;
    const { '@type': _dropped, ...rest } = obj;
    return checkMessage(inner, rest, `${where}<${inner.name}>`);
  }
  let oneofSeen: Map<string, string> | undefined;
  for (const [key, fieldValue] of Object.entries(obj)) {
    const field = type.fields[key];
    if (!field) return `${where}.${key}: no such field in ${type.fullName.slice(1)}`;
    if (fieldValue === undefined) continue;
    if (field.partOf) {
      const other = (oneofSeen ??= new Map()).get(field.partOf.name);
      if (other) return `${where}.${key}: oneof ${field.partOf.name} already set by ${other}`;
      oneofSeen.set(field.partOf.name, key);
    }
    const here = `${where}.${key}`;
    if (field.map) {
      if (typeof fieldValue !== 'object' || fieldValue === null) return `${here}: expected a map`;
      for (const [k, v] of Object.entries(fieldValue)) {
        const p = checkValue(field, v, `${here}[${k}]`);
        if (p) return p;
      }
    } else if (field.repeated) {
      if (!Array.isArray(fieldValue)) return `${here}: expected a list`;
      for (let i = 0; i < fieldValue.length; i++) {
        const p = checkValue(field, fieldValue[i], `${here}[${i}]`);
        if (p) return p;
      }
    } else {
      const p = checkValue(field, fieldValue, here);
      if (p) return p;
    }
  }
  return undefined;
}

function checkValue(field: protobuf.Field, value: unknown, where: string): string | undefined {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Type) return checkMessage(rt, value, where);
  if (rt instanceof protobuf.Enum) {
    if (typeof value === 'string' && value in rt.values) return undefined;
    return `${where}: ${JSON.stringify(value)} is not a value of enum ${rt.name}`;
  }
  const t = field.type;
  if (t === 'string') return typeof value === 'string' ? undefined : `${where}: expected a string`;
  if (t === 'bool') return typeof value === 'boolean' ? undefined : `${where}: expected a boolean`;
  if (t === 'double' || t === 'float') return typeof value === 'number' ? undefined : `${where}: expected a number`;
  if (INT_TYPES.has(t)) {
    const unsigned = t.startsWith('u') || t === 'fixed32';
    if (typeof value !== 'number' || !Number.isInteger(value)) return `${where}: expected an integer`;
    if (unsigned ? value < 0 || value > 0xffffffff : value < -0x80000000 || value > 0x7fffffff) {
      return `${where}: ${value} is out of range for ${t}`;
    }
    return undefined;
  }
  if (LONG_TYPES.has(t)) {
    const okLong = (typeof value === 'number' && Number.isSafeInteger(value)) || (typeof value === 'string' && /^-?\d+$/.test(value));
    return okLong ? undefined : `${where}: expected a 64-bit integer`;
  }
  if (t === 'bytes') return value instanceof Uint8Array ? undefined : `${where}: expected bytes`;
  return `${where}: unsupported field type ${t}`;
}
