import * as k8s from '@kubernetes/client-node';

interface Attribute {
  name: string;
  baseName: string;
  type: string;
}

/** Kubernetes kinds the manifests use → the @kubernetes/client-node model class generated from the API's OpenAPI. */
const KINDS: Record<string, string> = {
  'v1/Namespace': 'V1Namespace',
  'v1/ServiceAccount': 'V1ServiceAccount',
  'v1/Service': 'V1Service',
  'v1/ConfigMap': 'V1ConfigMap',
  'apps/v1/Deployment': 'V1Deployment',
  'apps/v1/DaemonSet': 'V1DaemonSet',
  'policy/v1/PodDisruptionBudget': 'V1PodDisruptionBudget',
  'rbac.authorization.k8s.io/v1/ClusterRole': 'V1ClusterRole',
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': 'V1ClusterRoleBinding',
  'rbac.authorization.k8s.io/v1/Role': 'V1Role',
  'rbac.authorization.k8s.io/v1/RoleBinding': 'V1RoleBinding',
  'cert-manager.io/v1/Certificate': 'CertManagerCertificate',
  'cert-manager.io/v1/ClusterIssuer': 'CertManagerClusterIssuer',
  'monitoring.coreos.com/v1/PrometheusRule': 'PrometheusRule',
};

const attrs = (fields: Record<string, string>): Attribute[] => Object.entries(fields).map(([name, type]) => ({ name, baseName: name, type }));

/**
 * cert-manager's CRDs (cert-manager.io/v1), which client-node has no models for: the fields of its API reference
 * (https://cert-manager.io/docs/reference/api-docs/) the manifests may use, typed as there. Issuer kinds the
 * manifests do not use (acme, vault, venafi) are accepted unchecked.
 */
const CRDS: Record<string, Attribute[]> = {
  CertManagerCertificate: attrs({ apiVersion: 'string', kind: 'string', metadata: 'V1ObjectMeta', spec: 'CertManagerCertificateSpec' }),
  CertManagerCertificateSpec: attrs({
    secretName: 'string', secretTemplate: 'CertManagerSecretTemplate', commonName: 'string', literalSubject: 'string', subject: 'CertManagerX509Subject',
    duration: 'Duration', renewBefore: 'Duration', renewBeforePercentage: 'number', dnsNames: 'Array<string>', ipAddresses: 'Array<string>',
    uris: 'Array<string>', emailAddresses: 'Array<string>', isCA: 'boolean', usages: 'Array<KeyUsage>', privateKey: 'CertManagerPrivateKey',
    issuerRef: 'CertManagerIssuerRef', revisionHistoryLimit: 'number', encodeUsagesInRequest: 'boolean',
  }),
  CertManagerSecretTemplate: attrs({ annotations: '{ [key: string]: string; }', labels: '{ [key: string]: string; }' }),
  CertManagerX509Subject: attrs(Object.fromEntries(['organizations', 'countries', 'organizationalUnits', 'localities', 'provinces', 'streetAddresses', 'postalCodes'].map((k) => [k, 'Array<string>']).concat([['serialNumber', 'string']]))),
  CertManagerPrivateKey: attrs({ rotationPolicy: 'PrivateKeyRotationPolicy', encoding: 'PrivateKeyEncoding', algorithm: 'PrivateKeyAlgorithm', size: 'number' }),
  CertManagerIssuerRef: attrs({ name: 'string', kind: 'string', group: 'string' }),
  CertManagerClusterIssuer: attrs({ apiVersion: 'string', kind: 'string', metadata: 'V1ObjectMeta', spec: 'CertManagerIssuerSpec' }),
  CertManagerIssuerSpec: attrs({ selfSigned: 'CertManagerSelfSignedIssuer', ca: 'CertManagerCaIssuer', acme: 'object', vault: 'object', venafi: 'object' }),
  CertManagerSelfSignedIssuer: attrs({ crlDistributionPoints: 'Array<string>' }),
  CertManagerCaIssuer: attrs({ secretName: 'string', crlDistributionPoints: 'Array<string>', ocspServers: 'Array<string>', issuingCertificateURL: 'Array<string>' }),
  // prometheus-operator's PrometheusRule (monitoring.coreos.com/v1), from its API reference.
  PrometheusRule: attrs({ apiVersion: 'string', kind: 'string', metadata: 'V1ObjectMeta', spec: 'PrometheusRuleSpec' }),
  PrometheusRuleSpec: attrs({ groups: 'Array<PrometheusRuleGroup>' }),
  PrometheusRuleGroup: attrs({ name: 'string', interval: 'Duration', query_offset: 'Duration', limit: 'number', partial_response_strategy: 'string', labels: '{ [key: string]: string; }', rules: 'Array<PrometheusRuleRule>' }),
  PrometheusRuleRule: attrs({ record: 'string', alert: 'string', expr: 'string', for: 'Duration', keep_firing_for: 'Duration', labels: '{ [key: string]: string; }', annotations: '{ [key: string]: string; }' }),
};

/** String types whose values the API restricts to a list. */
const ENUMS: Record<string, readonly string[]> = {
  KeyUsage: [
    'signing', 'digital signature', 'content commitment', 'key encipherment', 'key agreement', 'data encipherment', 'cert sign', 'crl sign',
    'encipher only', 'decipher only', 'any', 'server auth', 'client auth', 'code signing', 'email protection', 's/mime', 'ipsec end system',
    'ipsec tunnel', 'ipsec user', 'timestamping', 'ocsp signing', 'microsoft sgc', 'netscape sgc',
  ],
  PrivateKeyRotationPolicy: ['Never', 'Always'],
  PrivateKeyEncoding: ['PKCS1', 'PKCS8'],
  PrivateKeyAlgorithm: ['RSA', 'ECDSA', 'Ed25519'],
};

function modelClass(name: string): { attributeTypeMap: Attribute[] } | undefined {
  if (CRDS[name]) return { attributeTypeMap: CRDS[name] };
  const c = (k8s as unknown as Record<string, { attributeTypeMap?: Attribute[] }>)[name];
  return c?.attributeTypeMap ? (c as { attributeTypeMap: Attribute[] }) : undefined;
}

function checkType(type: string, value: unknown, where: string): string | undefined {
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (!Array.isArray(value)) return `${where}: expected a list`;
    for (let i = 0; i < value.length; i++) {
      const p = checkType(array[1]!, value[i], `${where}[${i}]`);
      if (p) return p;
    }
    return undefined;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return `${where}: expected a mapping`;
    for (const [k, v] of Object.entries(value)) {
      const p = checkType(map[1]!, v, `${where}.${k}`);
      if (p) return p;
    }
    return undefined;
  }
  switch (type) {
    case 'string':
      return typeof value === 'string' ? undefined : `${where}: expected a string (quote numbers and quantities)`;
    case 'number':
      return typeof value === 'number' ? undefined : `${where}: expected a number`;
    case 'boolean':
      return typeof value === 'boolean' ? undefined : `${where}: expected true or false`;
    case 'Date':
      return typeof value === 'string' && !Number.isNaN(Date.parse(value)) ? undefined : `${where}: expected a timestamp`;
    case 'IntOrString':
      return typeof value === 'number' || typeof value === 'string' ? undefined : `${where}: expected a number or a string`;
    case 'any':
    case 'object':
      return undefined;
    case 'Duration':
      // Go's time.ParseDuration, as cert-manager reads it.
      return typeof value === 'string' && /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(value) ? undefined : `${where}: expected a duration like 2160h or 90m`;
  }
  const allowed = ENUMS[type];
  if (allowed) return typeof value === 'string' && allowed.includes(value) ? undefined : `${where}: expected one of ${allowed.join(', ')}`;
  const cls = modelClass(type);
  if (!cls) return `${where}: no schema for type ${type}`;
  return checkObject(cls.attributeTypeMap, value, where);
}

function checkObject(attrs: Attribute[], value: unknown, where: string): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return `${where}: expected a mapping`;
  const byName = new Map(attrs.map((a) => [a.baseName, a]));
  for (const [key, v] of Object.entries(value)) {
    const a = byName.get(key);
    if (!a) return `${where}.${key}: no such field`;
    if (v === null) continue;
    const p = checkType(a.type, v, `${where}.${key}`);
    if (p) return p;
  }
  return undefined;
}

/**
 * Checks a manifest against the Kubernetes API schema as generated into @kubernetes/client-node's models:
 * every field known and of the right type (unknown fields fail, unlike a lenient apply). Returns the first
 * problem with its path, or undefined.
 */
export function checkManifest(doc: { apiVersion?: unknown; kind?: unknown }): string | undefined {
  const key = `${String(doc.apiVersion)}/${String(doc.kind)}`;
  const name = KINDS[key];
  if (!name) return `${key}: not a kind the manifests are allowed to use`;
  return checkObject(modelClass(name)!.attributeTypeMap, doc, String(doc.kind));
}
