import net from 'node:net';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { Endpoint, ServicePort, UpstreamProtocol } from '../../model/model.js';
import { compareAddresses } from '../../model/validate.js';

/** Label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** appProtocol values that mean HTTP/2 to the model server. */
const HTTP2_APP_PROTOCOLS = new Set(['kubernetes.io/h2c', 'h2c', 'http2', 'grpc']);

/** The model name of a Kubernetes Service: `namespace/name`. */
export function serviceKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/**
 * The ports of a Service as model ports: TCP ports only, named after the Service port (an unnamed single
 * port is `port-<number>`, since EndpointSlices list it with an empty name), HTTP/2 when `appProtocol` says
 * h2c, http2 or grpc. `sliceName` maps each to the name EndpointSlices use.
 */
export function servicePorts(svc: V1Service): { ports: ServicePort[]; sliceName: Map<string, string> } {
  const ports: ServicePort[] = [];
  const sliceName = new Map<string, string>();
  for (const p of svc.spec?.ports ?? []) {
    if ((p.protocol ?? 'TCP') !== 'TCP') continue;
    const name = p.name || `port-${p.port}`;
    const protocol: UpstreamProtocol = HTTP2_APP_PROTOCOLS.has(p.appProtocol ?? '') ? 'http2' : 'http1';
    ports.push({ name, protocol });
    sliceName.set(p.name ?? '', name);
  }
  return { ports, sliceName };
}

/**
 * Merges every EndpointSlice of a Service into endpoints. Slices are matched to Service ports by port name;
 * an address listed by two slices (as during a slice hand-over) is kept once, its ready copy winning, with
 * the ports of both. Conditions follow the EndpointSlice API: a missing `ready` means ready, a missing
 * `serving` means the value of `ready`, a missing `terminating` means false; only the first address of an
 * endpoint is used (the API says they are fungible). FQDN slices, slices without ports, unknown port names
 * and invalid addresses are skipped and reported in `problems`.
 */
export function mergeSlices(svc: V1Service, slices: readonly V1EndpointSlice[]): { endpoints: Endpoint[]; problems: string[] } {
  const { sliceName } = servicePorts(svc);
  const problems: string[] = [];
  const byAddress = new Map<string, Endpoint>();
  const sorted = [...slices].sort((a, b) => ((a.metadata?.name ?? '') < (b.metadata?.name ?? '') ? -1 : 1));
  for (const slice of sorted) {
    const where = `EndpointSlice ${slice.metadata?.namespace}/${slice.metadata?.name}`;
    if (slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6') {
      problems.push(`${where}: addressType ${slice.addressType} is not supported (only IPv4 and IPv6); skipped`);
      continue;
    }
    if (!slice.ports || slice.ports.length === 0) {
      if ((slice.endpoints ?? []).length > 0) problems.push(`${where}: has no ports; skipped`);
      continue;
    }
    const ports: Record<string, number> = {};
    for (const p of slice.ports) {
      const model = sliceName.get(p.name ?? '');
      if (model === undefined) {
        problems.push(`${where}: port name "${p.name ?? ''}" matches no port of the Service; ignored`);
        continue;
      }
      if (p.port === undefined || !Number.isInteger(p.port) || p.port < 1 || p.port > 65535) {
        problems.push(`${where}: port "${p.name ?? ''}" has no valid number; ignored`);
        continue;
      }
      ports[model] = p.port;
    }
    if (Object.keys(ports).length === 0) continue;
    for (const e of slice.endpoints ?? []) {
      const address = e.addresses?.[0];
      if (!address || net.isIP(address) !== (slice.addressType === 'IPv4' ? 4 : 6)) {
        problems.push(`${where}: "${address ?? ''}" is not a valid ${slice.addressType} address; skipped`);
        continue;
      }
      const terminating = e.conditions?.terminating ?? false;
      const ready = (e.conditions?.ready ?? true) && !terminating;
      const serving = e.conditions?.serving ?? (e.conditions?.ready ?? true);
      const next: Endpoint = { address, ports, zone: e.zone ?? '', ready, serving, terminating };
      const prev = byAddress.get(address);
      if (!prev) byAddress.set(address, next);
      else {
        const winner = prev.ready || !next.ready ? prev : next;
        byAddress.set(address, { ...winner, ports: { ...(winner === prev ? next.ports : prev.ports), ...winner.ports } });
      }
    }
  }
  const endpoints = [...byAddress.values()].sort((a, b) => compareAddresses(a.address, b.address));
  return { endpoints, problems };
}
