import type { PeerCertificate } from 'node:tls';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_ADMIN_PORT, DEFAULT_XDS_PORT } from '../../src/config/defaults.js';
import { accessCalls } from '../../src/sources/kubernetes/access.js';
import { readAnnotations } from '../../src/sources/kubernetes/annotations.js';
import { describeProblems, POLICY_KEY, readPolicy } from '../../src/scaler/policy.js';
import { checkManifest } from '../support/k8s-schema.js';
import { checkIdentity, parseIdentityRule } from '../../src/xds/identity.js';

const K8S = path.join(import.meta.dirname, '../../k8s');
const yamlFiles = (fs.readdirSync(K8S, { recursive: true }) as string[]).filter((f) => f.endsWith('.yaml')).sort();
const docsOf = (file: string) => parseAllDocuments(fs.readFileSync(path.join(K8S, file), 'utf8')).map((d) => d.toJS() as any);
const manifests = yamlFiles.filter((f) => !f.endsWith('kustomization.yaml') && !/envoy-sidecar(-mtls)?\.yaml$/.test(f)).flatMap((f) => docsOf(f).map((doc) => ({ file: f, doc })));
const find = (kind: string, name: string) => manifests.find((m) => m.doc.kind === kind && m.doc.metadata.name === name)!.doc;

describe('k8s/ manifests', () => {
  for (const { file, doc } of manifests) {
    it(`${file}: ${doc.kind} ${doc.metadata?.name} matches the Kubernetes API schema`, () => {
      expect(checkManifest(doc)).to.equal(undefined);
    });
  }

  it('catch a misspelt or mistyped field', () => {
    const d = structuredClone(find('Deployment', 'inferplane'));
    d.spec.replicaz = 2;
    expect(checkManifest(d)).to.equal('Deployment.spec.replicaz: no such field');
    const e = structuredClone(find('Deployment', 'llama-8b'));
    e.spec.template.spec.containers[0].resources.limits['nvidia.com/gpu'] = 1;
    expect(checkManifest(e)).to.contain('limits.nvidia.com/gpu: expected a string');
  });

  it('kustomizations list only files that exist', () => {
    for (const k of yamlFiles.filter((f) => f.endsWith('kustomization.yaml'))) {
      const doc = docsOf(k)[0];
      expect(Object.keys(doc).every((key) => ['apiVersion', 'kind', 'namespace', 'labels', 'resources', 'configMapGenerator', 'patches'].includes(key)), k).to.equal(true);
      for (const r of doc.resources) expect(fs.existsSync(path.join(K8S, path.dirname(k), r)), `${k}: ${r}`).to.equal(true);
      for (const g of doc.configMapGenerator ?? []) for (const f of g.files) expect(fs.existsSync(path.join(K8S, path.dirname(k), f.split('=').pop()))).to.equal(true);
      for (const p of doc.patches ?? []) expect(fs.existsSync(path.join(K8S, path.dirname(k), p.path)), `${k}: ${p.path}`).to.equal(true);
    }
  });

  it('grant exactly the API access the code uses (src/sources/kubernetes/access.ts)', () => {
    const calls = (role: any) => role.rules.flatMap((r: any) => r.apiGroups.flatMap((g: string) => r.resources.flatMap((res: string) => r.verbs.map((v: string) => `${g}/${res}/${v}`)))).sort();
    expect(calls(find('ClusterRole', 'inferplane'))).to.deep.equal(accessCalls({ scope: 'cluster' }));
    const role = find('Role', 'inferplane');
    expect(role.metadata.namespace).to.equal('inferplane-system');
    expect(calls(role)).to.deep.equal(accessCalls({ scope: 'namespace' }));
    const sa = [{ kind: 'ServiceAccount', name: 'inferplane', namespace: 'inferplane-system' }];
    expect(find('ClusterRoleBinding', 'inferplane').subjects).to.deep.equal(sa);
    expect(find('RoleBinding', 'inferplane').subjects).to.deep.equal(sa);
    expect(find('RoleBinding', 'inferplane').roleRef).to.deep.equal({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'inferplane' });
  });

  it('run inferplane as the issue asks: 2 replicas, readiness on /readyz, non-root, read-only root, spread, PDB', () => {
    const d = find('Deployment', 'inferplane');
    const pod = d.spec.template.spec;
    const c = pod.containers[0];
    expect(d.spec.replicas).to.equal(2);
    expect(c.readinessProbe.httpGet).to.deep.equal({ path: '/readyz', port: 'admin' });
    expect(c.livenessProbe.httpGet.path).to.equal('/healthz');
    expect(pod.securityContext.runAsNonRoot).to.equal(true);
    expect(c.securityContext).to.include({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(c.resources.requests).to.have.keys('cpu', 'memory');
    expect(pod.topologySpreadConstraints[0].topologyKey).to.equal('topology.kubernetes.io/zone');
    expect(pod.serviceAccountName).to.equal('inferplane');
    expect(c.args).to.include(`--xds-address=0.0.0.0:${DEFAULT_XDS_PORT}`).and.include(`--admin-address=0.0.0.0:${DEFAULT_ADMIN_PORT}`);
    expect(c.ports.map((p: any) => p.containerPort)).to.deep.equal([DEFAULT_XDS_PORT, DEFAULT_ADMIN_PORT]);
    const svc = find('Service', 'inferplane');
    expect(svc.spec.clusterIP).to.equal('None');
    expect(svc.spec.ports.map((p: any) => p.port)).to.deep.equal([DEFAULT_XDS_PORT, DEFAULT_ADMIN_PORT]);
    expect(find('PodDisruptionBudget', 'inferplane').spec.selector).to.deep.equal(d.spec.selector);
  });

  it('run vLLM on one H100 per pod, with minutes to load and a drain before stopping', () => {
    const d = find('Deployment', 'llama-8b');
    const pod = d.spec.template.spec;
    const c = pod.containers[0];
    expect(c.resources.limits['nvidia.com/gpu']).to.equal('1');
    expect(pod.nodeSelector['nvidia.com/gpu.product']).to.match(/H100/);
    expect(c.startupProbe.periodSeconds * c.startupProbe.failureThreshold).to.be.at.least(600);
    expect(c.readinessProbe.httpGet.path).to.equal('/health');
    expect(pod.terminationGracePeriodSeconds).to.be.greaterThan(c.lifecycle.preStop.sleep.seconds);
  });

  it("label the model Service for inferplane, with annotations inferplane accepts", () => {
    const svc = find('Service', 'llama-8b');
    expect(svc.metadata.labels['inferplane.io/serve']).to.equal('true');
    const read = readAnnotations(svc.metadata.annotations, 'ml/llama-8b', svc.spec.ports.map((p: any) => p.name));
    expect(read, JSON.stringify(read)).to.not.have.property('problems');
  });

  it('run the scaler on the policy ConfigMap, with the pod\'s namespace (Lease) and IP (stats relay)', () => {
    const c = find('Deployment', 'inferplane').spec.template.spec.containers[0];
    const policy = manifests.filter((m) => m.doc.kind === 'ConfigMap' && m.doc.metadata.name === 'inferplane-scaling-policy');
    expect(policy.map((m) => m.file)).to.deep.equal(['base/scaling-policy.yaml', 'overlays/example/scaling-policy.yaml']);
    expect(c.args).to.include('--scaler').and.include(`--policy-configmap=${policy[0]!.doc.metadata.namespace}/${policy[0]!.doc.metadata.name}`);
    expect(c.env.map((e: any) => [e.name, e.valueFrom.fieldRef.fieldPath])).to.deep.equal([['POD_NAMESPACE', 'metadata.namespace'], ['POD_IP', 'status.podIP']]);
    for (const { file, doc } of policy) {
      const r = readPolicy(doc.data[POLICY_KEY]);
      expect(r.ok, `${file}: ${r.ok ? '' : describeProblems(r.error).join('; ')}`).to.equal(true);
    }
    const kustomization = docsOf('overlays/example/kustomization.yaml')[0];
    expect(kustomization.patches).to.deep.equal([{ path: 'scaling-policy.yaml' }]);
  });

  it('comment every key of the example policy, and keep the overlay\'s copy equal to examples/scaling-policy.yaml', () => {
    const example = fs.readFileSync(path.join(K8S, '../examples/scaling-policy.yaml'), 'utf8');
    expect(find('ConfigMap', 'inferplane-scaling-policy') && manifests.find((m) => m.file === 'overlays/example/scaling-policy.yaml')!.doc.data[POLICY_KEY]).to.equal(example);
    const lines = example.split('\n');
    for (const [i, line] of lines.entries()) {
      if (!/^\s*[\w/.-]+:/.test(line)) continue;
      const commented = line.includes('#') || /^\s*#/.test(lines[i - 1] ?? '');
      expect(commented, `line ${i + 1} "${line.trim()}" has no comment`).to.equal(true);
    }
  });

  it('give the sidecar the bootstrap in envoy/ (the overlay copy is identical)', () => {
    expect(fs.readFileSync(path.join(K8S, 'overlays/example/envoy-sidecar.yaml'), 'utf8')).to.equal(fs.readFileSync(path.join(K8S, '../envoy/sidecar.yaml'), 'utf8'));
    const envoy = find('Deployment', 'client').spec.template.spec.containers.find((c: any) => c.name === 'envoy');
    expect(envoy.args).to.include('/etc/envoy/sidecar.yaml');
  });
});

describe('k8s/overlays/mtls: mTLS and node identity with cert-manager', () => {
  const doc = (file: string, kind: string, name: string) => docsOf(`overlays/mtls/${file}`).find((d) => d.kind === kind && d.metadata.name === name);
  const inferplaneTls = () => doc('inferplane-tls.yaml', 'Deployment', 'inferplane').spec.template.spec;
  const flag = (args: string[], name: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

  it('keeps every flag of the base Deployment and adds the TLS ones, pointing into the mounted Secret', () => {
    const pod = inferplaneTls();
    const c = pod.containers[0];
    const base = find('Deployment', 'inferplane').spec.template.spec.containers[0].args as string[];
    expect(c.args.filter((a: string) => !base.includes(a))).to.have.members([
      '--tls-cert=/etc/inferplane/tls/tls.crt', '--tls-key=/etc/inferplane/tls/tls.key', '--tls-client-ca=/etc/inferplane/tls/ca.crt', '--node-identity=uri:spiffe://cluster.local/envoy/{cluster}/{id}',
    ]);
    expect(base.filter((a) => !c.args.includes(a))).to.deep.equal([]);
    const mount = c.volumeMounts.find((m: any) => m.mountPath === '/etc/inferplane/tls');
    const volume = pod.volumes.find((v: any) => v.name === mount.name);
    expect(volume.secret.secretName).to.equal(doc('pki.yaml', 'Certificate', 'inferplane-xds').spec.secretName);
  });

  it("issues inferplane's certificate from the CA, for the name the mTLS bootstraps check, as server and relay client", () => {
    const cert = doc('pki.yaml', 'Certificate', 'inferplane-xds').spec;
    expect(cert.usages).to.include('server auth').and.include('client auth');
    for (const bootstrap of ['sidecar-mtls.yaml', 'front-proxy-mtls.yaml']) {
      const b = parseAllDocuments(fs.readFileSync(path.join(K8S, '../envoy', bootstrap), 'utf8'))[0]!.toJS();
      const tls = b.static_resources.clusters.find((c: any) => c.name === 'inferplane_xds').transport_socket.typed_config;
      expect(cert.dnsNames, bootstrap).to.include(tls.sni);
      for (const m of tls.common_tls_context.validation_context.match_typed_subject_alt_names) expect(cert.dnsNames, bootstrap).to.include(m.matcher.exact);
    }
    const issuer = doc('pki.yaml', 'ClusterIssuer', cert.issuerRef.name);
    const ca = doc('pki.yaml', 'Certificate', 'inferplane-ca');
    expect(issuer.spec.ca.secretName).to.equal(ca.spec.secretName);
    expect(ca.spec.isCA).to.equal(true);
    // A ClusterIssuer reads its CA Secret from cert-manager's own namespace.
    expect(ca.metadata.namespace).to.equal('cert-manager');
    expect(doc('pki.yaml', 'ClusterIssuer', ca.spec.issuerRef.name).spec.selfSigned).to.deep.equal({});
  });

  it("gives each client Envoy its own certificate, which proves its node id and no other under inferplane's --node-identity rule", () => {
    const pod = doc('client-tls.yaml', 'Deployment', 'client').spec.template.spec;
    const envoy = pod.containers.find((c: any) => c.name === 'envoy');
    const volume = pod.volumes.find((v: any) => v.name === envoy.volumeMounts[0].name);
    expect(envoy.volumeMounts[0].mountPath).to.equal('/etc/envoy/tls'); // where envoy/sidecar-mtls.yaml reads tls.crt, tls.key, ca.crt
    expect(volume.csi.driver).to.equal('csi.cert-manager.io');
    const attrs = volume.csi.volumeAttributes;
    expect(doc('pki.yaml', attrs['csi.cert-manager.io/issuer-kind'], attrs['csi.cert-manager.io/issuer-name'])).to.not.equal(undefined);
    expect(attrs['csi.cert-manager.io/key-usages']).to.contain('client auth');
    const rule = parseIdentityRule(flag(inferplaneTls().containers[0].args, 'node-identity')!);
    if (!rule.ok) throw new Error(rule.error);
    const args: string[] = envoy.args;
    expect(args[args.indexOf('--service-node') + 1]).to.equal('$(POD_NAME)');
    const cluster = args[args.indexOf('--service-cluster') + 1]!;
    // What csi-driver writes for pod client-7d9f: its ${POD_NAME} substituted into the URI SAN.
    const certificate = { subjectaltname: `URI:${attrs['csi.cert-manager.io/uri-sans'].replace('${POD_NAME}', 'client-7d9f')}` } as PeerCertificate;
    expect(checkIdentity(rule.value, certificate, { id: 'client-7d9f', cluster })).to.equal(undefined);
    expect(checkIdentity(rule.value, certificate, { id: 'client-other', cluster })).to.contain('does not prove');
  });

  it('give the mTLS sidecar the bootstrap in envoy/ (the overlay copy is identical)', () => {
    expect(fs.readFileSync(path.join(K8S, 'overlays/mtls/envoy-sidecar-mtls.yaml'), 'utf8')).to.equal(fs.readFileSync(path.join(K8S, '../envoy/sidecar-mtls.yaml'), 'utf8'));
    const envoy = doc('client-tls.yaml', 'Deployment', 'client').spec.template.spec.containers.find((c: any) => c.name === 'envoy');
    expect(envoy.args).to.include('/etc/envoy/sidecar-mtls.yaml');
  });

  it('the schema check knows cert-manager fields and their values', () => {
    const cert = structuredClone(doc('pki.yaml', 'Certificate', 'inferplane-xds'));
    cert.spec.usages = ['server auth', 'server-auth'];
    expect(checkManifest(cert)).to.match(/^Certificate\.spec\.usages\[1\]: expected one of/);
    cert.spec.usages = ['server auth'];
    cert.spec.duration = '90d';
    expect(checkManifest(cert)).to.contain('Certificate.spec.duration: expected a duration');
    cert.spec.duration = '2160h';
    cert.spec.dnsName = ['x'];
    expect(checkManifest(cert)).to.equal('Certificate.spec.dnsName: no such field');
  });
});

describe('k8s/overlays/fast-start: shorter cold starts', () => {
  const vllm = docsOf('overlays/example/vllm.yaml').find((d) => d.kind === 'Deployment');
  const prefetch = docsOf('overlays/fast-start/prefetch.yaml')[0];
  const patch = docsOf('overlays/fast-start/vllm-cache.yaml')[0];

  it('pre-pulls exactly the image the vLLM pods run, on exactly the nodes they may run on', () => {
    const image = vllm.spec.template.spec.containers[0].image;
    expect(prefetch.spec.template.spec.initContainers.map((c: { image: string }) => c.image)).to.deep.equal([image, image]);
    expect(prefetch.spec.template.spec.nodeSelector).to.deep.equal(vllm.spec.template.spec.nodeSelector);
    expect(prefetch.spec.template.spec.tolerations).to.deep.equal(vllm.spec.template.spec.tolerations);
  });

  it('fills the node-local cache the vLLM pods read their weights from, and the pods never download them', () => {
    const written = prefetch.spec.template.spec.volumes[0].hostPath.path;
    expect(patch.spec.template.spec.volumes[0].hostPath.path).to.equal(written);
    const model = vllm.spec.template.spec.containers[0].args.find((a: string) => a.startsWith('--model=')).slice('--model='.length);
    expect(prefetch.spec.template.spec.initContainers[1].command).to.include(model);
    const env = (c: { env: { name: string; value?: string }[] }) => Object.fromEntries(c.env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value]));
    expect(env(patch.spec.template.spec.containers[0])).to.deep.equal({ HF_HOME: env(prefetch.spec.template.spec.initContainers[1]).HF_HOME, HF_HUB_OFFLINE: '1' });
  });
});
