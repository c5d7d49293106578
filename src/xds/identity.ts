import type { PeerCertificate } from 'node:tls';
import { err, ok, type Result } from '../result.js';

/**
 * A rule tying a node's claimed identity to its client certificate: a subject alternative name the certificate
 * must carry, with `{id}` and `{cluster}` standing for the node's `id` and `cluster`, e.g.
 * `uri:spiffe://cluster.local/ns/edge/envoy/{id}` or `dns:{id}.envoys.example.com`.
 */
export interface IdentityRule {
  readonly kind: 'uri' | 'dns';
  readonly template: string;
}

/** Parses `uri:TEMPLATE` or `dns:TEMPLATE`; the template must use `{id}`. */
export function parseIdentityRule(text: string): Result<IdentityRule, string> {
  const m = /^(uri|dns):(.+)$/.exec(text);
  if (!m) return err(`"${text}" is not uri:TEMPLATE or dns:TEMPLATE`);
  if (!m[2]!.includes('{id}')) return err(`"${text}" does not use {id}: every node would share one identity`);
  return ok({ kind: m[1] as IdentityRule['kind'], template: m[2]! });
}

/**
 * Whether `certificate` proves the node `id` / `cluster` under `rule`: undefined when it does, else why not (for
 * the PERMISSION_DENIED details and the log). A node without a client certificate never does.
 */
export function checkIdentity(rule: IdentityRule, certificate: PeerCertificate | undefined, node: { readonly id: string; readonly cluster: string }): string | undefined {
  const want = `${rule.kind.toUpperCase()}:${rule.template.replaceAll('{id}', node.id).replaceAll('{cluster}', node.cluster)}`;
  if (!certificate || Object.keys(certificate).length === 0) return `node "${node.id}" presented no client certificate; ${want} is required`;
  const sans = (certificate.subjectaltname ?? '').split(', ');
  return sans.includes(want) ? undefined : `node "${node.id}" claims an identity its certificate does not prove: ${want} is required, the certificate names ${sans.filter(Boolean).join(', ') || 'nothing'}`;
}
