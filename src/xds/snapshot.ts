import { createHash } from 'node:crypto';
import { err, ok, type Result } from '../result.js';
import type { ResourceSpec } from '../translate/common.js';
import { encodeStrictSteps } from './protos.js';
import { FULL_STATE_TYPES, messageName, TYPE_SHORT, TypeUrl } from './resources.js';
import { deltaEntry, sotwEntry } from './wire.js';
import { runSteps, type Steps } from '../steps.js';
import { MAX_RESPONSE_BYTES } from '../config/defaults.js';

/** The default response bound, kept in config/defaults.ts for the command line's usage. */
export { MAX_RESPONSE_BYTES };

/** Room left for a response's own fields (version, type URL, nonce, control plane) when checking resources. */
export const RESPONSE_HEADROOM = 16 * 1024;

/** One resource, encoded once for its version and shared, read-only, by every stream that sends it. */
export interface EncodedResource {
  readonly typeUrl: TypeUrl;
  readonly name: string;
  /** Hash of the encoded bytes: equal content gives equal versions on every replica. */
  readonly version: string;
  readonly wildcard: boolean;
  /** Protobuf bytes of the resource message. */
  readonly bytes: Uint8Array;
  /** Ready-made DiscoveryResponse `resources` entry. */
  readonly sotw: Buffer;
  /** Ready-made DeltaDiscoveryResponse `resources` entry. */
  readonly delta: Buffer;
  /** Canonical JSON of the source object, to reuse this encoding when the next model has the same resource. */
  readonly source: string;
}

/** All resources of one type in a snapshot; shared, as the same object, by later snapshots while unchanged. */
export interface TypeSnapshot {
  /** Hash over the (name, version) pairs of every resource: the Delta `system_version_info`. */
  readonly version: string;
  /**
   * {@link versionOf} the wildcard-visible resources: the SotW `version_info` a wildcard subscriber holds. It
   * differs from `version` when named-only resources exist (API listeners), which such a client never gets.
   */
  readonly wildcardVersion: string;
  /** In name order. */
  readonly resources: ReadonlyMap<string, EncodedResource>;
  /** Concatenated SotW entries of the wildcard-visible resources, built once and shared by wildcard streams. */
  readonly wildcardBody: readonly Buffer[];
}

/**
 * An immutable, internally consistent set of resources for one node group. Never mutate one: build a new
 * snapshot instead. `version` is a hash of the type versions, so two replicas given the same model agree.
 */
export interface Snapshot {
  readonly version: string;
  readonly types: Readonly<Record<TypeUrl, TypeSnapshot>>;
}

function hash(parts: readonly (string | Uint8Array)[]): string {
  const h = createHash('sha256');
  for (const p of parts) {
    h.update(p);
    h.update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

function* encodeResource(spec: ResourceSpec, source: string): Steps<Result<EncodedResource>> {
  const encoded = yield* encodeStrictSteps(messageName(spec.typeUrl), spec.value);
  if (!encoded.ok) return err(`${spec.name}: ${encoded.error}`);
  const bytes = encoded.value;
  const version = hash([spec.typeUrl, bytes]);
  return ok({
    typeUrl: spec.typeUrl,
    name: spec.name,
    version,
    wildcard: spec.wildcard,
    bytes,
    sotw: sotwEntry(spec.typeUrl, bytes),
    delta: deltaEntry(spec.name, version, spec.typeUrl, bytes),
    source,
  });
}

/**
 * Encodes resources into a snapshot, after checking it is consistent: names unique per type, every EDS
 * assignment referenced by a cluster and every cluster's assignment present, every route table referenced by
 * a listener and every listener's route table present, every route's cluster present. Resources whose
 * source is unchanged from `previous` reuse its encoding. Returns every problem found, or the snapshot.
 */
export function buildSnapshot(specs: readonly ResourceSpec[], previous?: Snapshot, maxResponseBytes = MAX_RESPONSE_BYTES): Result<Snapshot, string[]> {
  return runSteps(buildSnapshotSteps(specs, previous, maxResponseBytes));
}

/** {@link buildSnapshot} as steps (see src/steps.ts), one resource at a time. */
export function* buildSnapshotSteps(specs: readonly ResourceSpec[], previous?: Snapshot, maxResponseBytes = MAX_RESPONSE_BYTES): Steps<Result<Snapshot, string[]>> {
  const problems: string[] = [];
  const byType = new Map<TypeUrl, Map<string, EncodedResource>>(Object.values(TypeUrl).map((t) => [t, new Map()]));
  for (const spec of specs) {
    const map = byType.get(spec.typeUrl)!;
    if (map.has(spec.name)) {
      problems.push(`${spec.typeUrl}: duplicate resource name "${spec.name}"`);
      continue;
    }
    const source = JSON.stringify([spec.wildcard, spec.value]);
    const old = previous?.types[spec.typeUrl].resources.get(spec.name);
    if (old && old.source === source) {
      map.set(spec.name, old);
    } else {
      const r = yield* encodeResource(spec, source);
      if (r.ok) map.set(spec.name, r.value);
      else problems.push(r.error);
    }
    yield;
  }
  problems.push(...(yield* checkReferencesSteps(specs, byType)));
  for (const [typeUrl, resources] of byType) problems.push(...checkSizes(typeUrl, resources, maxResponseBytes));
  if (problems.length > 0) return err(problems);
  const types = {} as Record<TypeUrl, TypeSnapshot>;
  for (const [typeUrl, resources] of byType) {
    types[typeUrl] = typeSnapshot(resources, previous?.types[typeUrl]);
    yield;
  }
  return ok(assemble(types));
}

/**
 * The version of a set of resources, sorted by name: a hash of their (name, version) pairs, so it depends on
 * content alone and every replica computes the same one for the same set.
 */
export function versionOf(sorted: readonly EncodedResource[]): string {
  // The bytes hash() would see for the parts [name, version, ...], in one call.
  let pairs = '';
  for (const r of sorted) pairs += `${r.name}\0${r.version}\0`;
  return createHash('sha256').update(pairs).digest('hex').slice(0, 16);
}

function typeSnapshot(resources: ReadonlyMap<string, EncodedResource>, old: TypeSnapshot | undefined): TypeSnapshot {
  const sorted = [...resources.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const version = versionOf(sorted);
  // An unchanged type keeps its object, so streams can tell "nothing new here" by identity.
  if (old && old.version === version) return old;
  const wildcard = sorted.filter((r) => r.wildcard);
  return { version, wildcardVersion: wildcard.length === sorted.length ? version : versionOf(wildcard), resources: new Map(sorted.map((r) => [r.name, r])), wildcardBody: wildcard.map((r) => r.sotw) };
}

function assemble(types: Record<TypeUrl, TypeSnapshot>): Snapshot {
  return { version: hash(Object.values(TypeUrl).map((t) => types[t].version)), types };
}

/**
 * The endpoint fast path: a snapshot equal to `previous` except for the given ClusterLoadAssignments, each
 * replacing one that `previous` already has (so every reference stays consistent without re-checking the
 * rest). Every other type is reused as is. Fails, changing nothing, if a name is new or a spec is not EDS.
 * An assignment `reuse` already holds encoded with the same content is taken from it rather than encoded again.
 */
export function patchEndpoints(previous: Snapshot, upserts: readonly ResourceSpec[], maxResponseBytes = MAX_RESPONSE_BYTES): Result<Snapshot, string[]> {
  return runSteps(patchEndpointsSteps(previous, upserts, maxResponseBytes));
}

/** {@link patchEndpoints} as steps (see src/steps.ts), one assignment at a time. */
export function* patchEndpointsSteps(previous: Snapshot, upserts: readonly ResourceSpec[], maxResponseBytes = MAX_RESPONSE_BYTES, reuse?: Snapshot): Steps<Result<Snapshot, string[]>> {
  const eds = previous.types[TypeUrl.Endpoint];
  const resources = new Map(eds.resources);
  const problems: string[] = [];
  for (const spec of upserts) {
    const old = eds.resources.get(spec.name);
    if (spec.typeUrl !== TypeUrl.Endpoint || !old) {
      problems.push(`${spec.typeUrl} "${spec.name}": the endpoint fast path only replaces existing assignments`);
      continue;
    }
    const source = JSON.stringify([spec.wildcard, spec.value]);
    if (old.source === source) continue;
    const known = reuse?.types[TypeUrl.Endpoint].resources.get(spec.name);
    if (known?.source === source) {
      resources.set(spec.name, known);
      continue;
    }
    const r = yield* encodeResource(spec, source);
    if (r.ok) resources.set(spec.name, r.value);
    else problems.push(r.error);
    yield;
  }
  problems.push(...checkSizes(TypeUrl.Endpoint, resources, maxResponseBytes));
  if (problems.length > 0) return err(problems);
  return ok(assemble({ ...previous.types, [TypeUrl.Endpoint]: typeSnapshot(resources, eds) }));
}

/**
 * Keeps every response within what clients accept. EDS and RDS responses, and every Delta response, may carry
 * any subset of resources, so streams split them (see XdsStream); one resource must still fit in one. A SotW
 * CDS or LDS response must carry every subscribed resource at once, so all of them together must fit.
 */
function checkSizes(typeUrl: TypeUrl, resources: ReadonlyMap<string, EncodedResource>, maxResponseBytes: number): string[] {
  const budget = maxResponseBytes - RESPONSE_HEADROOM;
  const limit = () => `${maxResponseBytes.toLocaleString('en-US')} bytes, the default gRPC receive limit of xDS clients`;
  const problems: string[] = [];
  let total = 0;
  for (const r of resources.values()) {
    const size = Math.max(r.sotw.length, r.delta.length);
    total += r.sotw.length;
    if (size > budget) problems.push(`${kind(typeUrl)} "${r.name}" encodes to ${size.toLocaleString('en-US')} bytes; one xDS response carries it whole and must stay under ${limit()}`);
  }
  if (FULL_STATE_TYPES.has(typeUrl) && total > budget) {
    problems.push(`the ${resources.size} ${kind(typeUrl)}s encode to ${total.toLocaleString('en-US')} bytes together; a state-of-the-world ${TYPE_SHORT[typeUrl].toUpperCase()} response carries every one of them and must stay under ${limit()}`);
  }
  return problems;
}

/** Names a resource refers to, per referenced type. */
function referencesOf(spec: ResourceSpec): { typeUrl: TypeUrl; name: string }[] {
  const v = spec.value as Record<string, any>;
  switch (spec.typeUrl) {
    case TypeUrl.Cluster: {
      const eds = v['eds_cluster_config'];
      return eds ? [{ typeUrl: TypeUrl.Endpoint, name: eds.service_name || spec.name }] : [];
    }
    case TypeUrl.Listener: {
      const hcms = [v['api_listener']?.api_listener, ...(v['filter_chains'] ?? []).flatMap((c: any) => (c.filters ?? []).map((f: any) => f.typed_config))];
      return hcms.filter((h) => h?.rds?.route_config_name).map((h) => ({ typeUrl: TypeUrl.Route, name: h.rds.route_config_name }));
    }
    case TypeUrl.Route:
      return (v['virtual_hosts'] ?? []).flatMap((vh: any) => (vh.routes ?? []).filter((r: any) => r.route?.cluster).map((r: any) => ({ typeUrl: TypeUrl.Cluster, name: r.route.cluster })));
    default:
      return [];
  }
}

/** `Cluster`, `ClusterLoadAssignment`, …: the message name without its package, for messages. */
function kind(typeUrl: TypeUrl): string {
  return messageName(typeUrl).split('.').pop()!;
}

/** Resources per step of {@link checkReferencesSteps}: thousands of them in one piece took 25 ms and more. */
const REFERENCE_CHECKS_PER_STEP = 256;

/** Every reference resolves, and every assignment and route table is referenced; yields as it goes. */
function* checkReferencesSteps(specs: readonly ResourceSpec[], byType: ReadonlyMap<TypeUrl, ReadonlyMap<string, unknown>>): Steps<string[]> {
  const problems: string[] = [];
  const referenced = new Map<TypeUrl, Set<string>>([[TypeUrl.Endpoint, new Set()], [TypeUrl.Route, new Set()]]);
  let done = 0;
  for (const spec of specs) {
    for (const ref of referencesOf(spec)) {
      referenced.get(ref.typeUrl)?.add(ref.name);
      if (!byType.get(ref.typeUrl)!.has(ref.name)) {
        problems.push(`${kind(spec.typeUrl)} "${spec.name}" refers to missing ${kind(ref.typeUrl)} "${ref.name}"`);
      }
    }
    if (++done % REFERENCE_CHECKS_PER_STEP === 0) yield;
  }
  for (const [typeUrl, names] of referenced) {
    for (const name of byType.get(typeUrl)!.keys()) {
      if (!names.has(name)) problems.push(`${kind(typeUrl)} "${name}" is not referenced by any ${typeUrl === TypeUrl.Endpoint ? 'Cluster' : 'Listener'}`);
      if (++done % REFERENCE_CHECKS_PER_STEP === 0) yield;
    }
  }
  return problems;
}
