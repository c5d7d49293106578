import protobuf from 'protobufjs';
import { envoyRoot, messageType } from '../../src/xds/protos.js';

const INT_TYPES = new Set(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32']);

const WRAPPERS: Record<string, string> = {
  '.google.protobuf.DoubleValue': 'double', '.google.protobuf.FloatValue': 'float', '.google.protobuf.Int64Value': 'int64',
  '.google.protobuf.UInt64Value': 'uint64', '.google.protobuf.Int32Value': 'int32', '.google.protobuf.UInt32Value': 'uint32',
  '.google.protobuf.BoolValue': 'bool', '.google.protobuf.StringValue': 'string', '.google.protobuf.BytesValue': 'bytes',
};

/**
 * Checks a value written in the proto3 JSON mapping (as Envoy's YAML and JSON config files are) against a
 * message type: field names as in the .proto or lowerCamelCase, durations as "1.5s", wrappers as bare values,
 * `Any` with "@type", enums by name. Returns the first problem with its path, or undefined if it is valid.
 * Envoy rejects unknown fields in config files; so does this.
 */
export function checkProtoJson(fullName: string, value: unknown): string | undefined {
  return checkJsonMessage(messageType(fullName), value, fullName);
}

function checkJsonMessage(type: protobuf.Type, value: unknown, where: string): string | undefined {
  switch (type.fullName) {
    case '.google.protobuf.Duration':
      return typeof value === 'string' && /^-?\d+(\.\d{1,9})?s$/.test(value) ? undefined : `${where}: expected a duration such as "1.5s"`;
    case '.google.protobuf.Timestamp':
      return typeof value === 'string' && !Number.isNaN(Date.parse(value)) ? undefined : `${where}: expected an RFC 3339 timestamp`;
    case '.google.protobuf.Struct':
      return typeof value === 'object' && value !== null && !Array.isArray(value) ? undefined : `${where}: expected a mapping`;
    case '.google.protobuf.Value':
      return undefined;
    case '.google.protobuf.ListValue':
      return Array.isArray(value) ? undefined : `${where}: expected a list`;
    case '.google.protobuf.FieldMask':
      return typeof value === 'string' ? undefined : `${where}: expected a field mask string`;
  }
  const wrapped = WRAPPERS[type.fullName];
  if (wrapped) return checkJsonScalar(wrapped, value, where);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return `${where}: expected a ${type.fullName.slice(1)} mapping`;
  const obj = value as Record<string, unknown>;
  if (type.fullName === '.google.protobuf.Any') {
    const url = obj['@type'];
    if (typeof url !== 'string') return `${where}: Any needs "@type"`;
    const inner = envoyRoot().lookup(url.slice(url.lastIndexOf('/') + 1));
    if (!(inner instanceof protobuf.Type)) return `${where}: unknown "@type" ${url} (its .proto is not loaded)`;
    const { '@type': _t, ...rest } = obj;
    const special = inner.fullName.startsWith('.google.protobuf.') && (inner.fullName in WRAPPERS || ['.google.protobuf.Duration', '.google.protobuf.Timestamp', '.google.protobuf.Struct', '.google.protobuf.Value'].includes(inner.fullName));
    return special ? checkJsonMessage(inner, rest['value'], `${where}.value`) : checkJsonMessage(inner, rest, `${where}<${inner.name}>`);
  }
  const byJsonName = new Map<string, protobuf.Field>();
  for (const f of type.fieldsArray) {
    byJsonName.set(f.name, f);
    byJsonName.set(f.name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase()), f);
  }
  const oneofSeen = new Map<string, string>();
  for (const [key, v] of Object.entries(obj)) {
    const field = byJsonName.get(key);
    const here = `${where}.${key}`;
    if (!field) return `${here}: no such field in ${type.fullName.slice(1)}`;
    if (v === null) continue;
    if (field.partOf) {
      const other = oneofSeen.get(field.partOf.name);
      if (other) return `${here}: oneof ${field.partOf.name} already set by ${other}`;
      oneofSeen.set(field.partOf.name, key);
    }
    const one = (x: unknown, w: string) => {
      const rt = field.resolvedType;
      if (rt instanceof protobuf.Type) return checkJsonMessage(rt, x, w);
      if (rt instanceof protobuf.Enum) return (typeof x === 'string' && x in rt.values) || (typeof x === 'number' && Object.values(rt.values).includes(x)) ? undefined : `${w}: ${JSON.stringify(x)} is not a value of enum ${rt.name}`;
      return checkJsonScalar(field.type, x, w);
    };
    if (field.map) {
      if (typeof v !== 'object' || Array.isArray(v)) return `${here}: expected a mapping`;
      for (const [k, x] of Object.entries(v as object)) {
        const p = one(x, `${here}[${k}]`);
        if (p) return p;
      }
    } else if (field.repeated) {
      if (!Array.isArray(v)) return `${here}: expected a list`;
      for (let i = 0; i < v.length; i++) {
        const p = one(v[i], `${here}[${i}]`);
        if (p) return p;
      }
    } else {
      const p = one(v, here);
      if (p) return p;
    }
  }
  return undefined;
}

function checkJsonScalar(t: string, value: unknown, where: string): string | undefined {
  if (t === 'string') return typeof value === 'string' ? undefined : `${where}: expected a string`;
  if (t === 'bool') return typeof value === 'boolean' ? undefined : `${where}: expected true or false`;
  if (t === 'bytes') return typeof value === 'string' ? undefined : `${where}: expected base64 bytes`;
  if (t === 'double' || t === 'float') return typeof value === 'number' || (typeof value === 'string' && !Number.isNaN(Number(value))) ? undefined : `${where}: expected a number`;
  const n = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n)) return `${where}: expected a whole number`;
  if ((t.startsWith('u') || t.startsWith('fixed')) && n < 0) return `${where}: ${n} must not be negative`;
  if (INT_TYPES.has(t) && (n > 0xffffffff || n < -0x80000000)) return `${where}: ${n} is out of range for ${t}`;
  return undefined;
}
