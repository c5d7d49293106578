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
  'policy/v1/PodDisruptionBudget': 'V1PodDisruptionBudget',
  'rbac.authorization.k8s.io/v1/ClusterRole': 'V1ClusterRole',
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': 'V1ClusterRoleBinding',
  'rbac.authorization.k8s.io/v1/Role': 'V1Role',
  'rbac.authorization.k8s.io/v1/RoleBinding': 'V1RoleBinding',
};

function modelClass(name: string): { attributeTypeMap: Attribute[] } | undefined {
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
  }
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
