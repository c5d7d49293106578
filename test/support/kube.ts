import { KubeConfig, type V1EndpointSlice, type V1Service } from '@kubernetes/client-node';
import type { ScalerSettings } from '../../src/serve.js';

/** A KubeConfig pointing at a stand-in API server. */
export function kubeConfigFor(url: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'stand-in', server: url, skipTLSVerify: true }],
    users: [{ name: 'test' }],
    contexts: [{ name: 'stand-in', cluster: 'stand-in', user: 'test' }],
    currentContext: 'stand-in',
  });
  return kc;
}

/**
 * The RBAC call an API request is (from the stand-in's request log, `METHOD path?query`): `group/resource/verb`,
 * with subresources as `resource/subresource`, as access.ts lists them.
 */
export function callOf(request: string): string {
  const [method, url] = request.split(' ') as [string, string];
  const u = new URL(url, 'http://x');
  const m = /^\/(?:api\/v1|apis\/([^/]+)\/[^/]+)(?:\/namespaces\/[^/]+)?\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(u.pathname);
  if (!m) throw new Error(`not an API path: ${request}`);
  const named = m[3] !== undefined;
  const verb = method === 'GET' ? (u.searchParams.get('watch') === 'true' ? 'watch' : named ? 'get' : 'list') : method === 'POST' ? 'create' : method === 'PUT' ? 'update' : method.toLowerCase();
  return `${m[1] ?? ''}/${m[2]}${m[4] ? `/${m[4]}` : ''}/${verb}`;
}

/** A Service served by inferplane (labelled), with optional annotations and ports. */
export function service(ns: string, name: string, o: { annotations?: Record<string, string>; ports?: { name?: string; port: number; appProtocol?: string; protocol?: string }[]; labels?: Record<string, string> } = {}): V1Service & { kind: string; metadata: { name: string } } {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns, labels: o.labels ?? { 'inferplane.io/serve': 'true' }, ...(o.annotations && { annotations: o.annotations }) },
    spec: { ports: o.ports ?? [{ name: 'http', port: 80 }] },
  };
}

/** One endpoint of a slice: address and conditions. */
export interface EndpointSpec {
  address: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
  zone?: string;
}

/** An EndpointSlice of `svc`, IPv4 unless told, with one port (named `http`, 8000 unless told). */
export function slice(ns: string, svc: string, name: string, endpoints: EndpointSpec[], o: { addressType?: string; ports?: { name?: string; port?: number }[] | null } = {}): V1EndpointSlice & { kind: string; metadata: { name: string } } {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': svc } },
    addressType: o.addressType ?? 'IPv4',
    ...(o.ports !== null && { ports: o.ports ?? [{ name: 'http', port: 8000 }] }),
    endpoints: endpoints.map((e) => ({
      addresses: [e.address],
      ...(e.zone && { zone: e.zone }),
      conditions: { ...(e.ready !== undefined && { ready: e.ready }), ...(e.serving !== undefined && { serving: e.serving }), ...(e.terminating !== undefined && { terminating: e.terminating }) },
    })),
  };
}

/**
 * Scaler settings for a replica under test: the policy ConfigMap inferplane-system/scaling-policy, the Lease
 * inferplane-system/inferplane-scaler with second-scale timings, decisions every 100 ms, and 127.0.0.1 as the
 * address other replicas relay to.
 */
export function testScalerSettings(apiUrl: string, o: { dryRun?: boolean } = {}): ScalerSettings {
  return {
    policy: { kind: 'configmap', namespace: 'inferplane-system', name: 'scaling-policy' },
    dryRun: o.dryRun ?? false,
    kubeConfig: kubeConfigFor(apiUrl),
    lease: { namespace: 'inferplane-system', name: 'inferplane-scaler', durationMs: 1_000, renewDeadlineMs: 700, retryPeriodMs: 100 },
    intervalMs: 100,
    advertiseHost: '127.0.0.1',
  };
}
