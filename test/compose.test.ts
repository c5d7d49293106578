import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import { DEFAULT_ADMIN_PORT, DEFAULT_XDS_PORT } from '../src/config/defaults.js';
import { describeProblems, readPolicy } from '../src/scaler/policy.js';
import { loadEndpointsFile } from '../src/sources/file/endpoints-file.js';

const ROOT = path.join(import.meta.dirname, '..');
const compose = parse(fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')) as any;
const SERVICE_KEYS = ['build', 'image', 'command', 'ports', 'volumes', 'depends_on', 'networks'];

/**
 * No Docker engine (or `docker compose`) runs here, so the compose file is checked structurally: known keys
 * only, every mounted file present, and every name, address and port agreeing with the bootstraps, the
 * endpoints file and the simulator.
 */
describe('docker-compose.yml (structure and agreement; not run in this environment)', () => {
  it('uses only known keys and mounts files that exist', () => {
    expect(Object.keys(compose).sort()).to.deep.equal(['name', 'networks', 'services']);
    for (const [name, svc] of Object.entries<any>(compose.services)) {
      for (const k of Object.keys(svc)) expect(SERVICE_KEYS, `${name}.${k}`).to.include(k);
      for (const v of svc.volumes ?? []) expect(fs.existsSync(path.join(ROOT, v.split(':')[0])), `${name}: ${v}`).to.equal(true);
      for (const d of svc.depends_on ?? []) expect(compose.services, `${name} depends on ${d}`).to.have.property(d);
    }
  });

  it('points Envoy at inferplane with the front-proxy bootstrap, and exposes the listener inferplane serves', () => {
    const endpoints = loadEndpointsFile(path.join(ROOT, 'examples/compose-endpoints.yaml'));
    if (!endpoints.ok) throw new Error(endpoints.error.join('\n'));
    const boot = parse(fs.readFileSync(path.join(ROOT, 'envoy/front-proxy.yaml'), 'utf8')) as any;
    const xds = boot.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address;
    expect(xds).to.deep.equal({ address: 'inferplane', port_value: DEFAULT_XDS_PORT });
    expect(compose.services.envoy.ports).to.deep.equal([`${endpoints.value.listener.port}:${endpoints.value.listener.port}`]);
    expect(compose.services.inferplane.command).to.deep.equal(['serve', '--endpoints', '/app/examples/compose-endpoints.yaml', '--scaler', '--dry-run', '--policy', '/app/examples/compose-scaling-policy.yaml']);
    // The dry-run scaler's policy is valid and scales the service the endpoints file serves.
    const policy = readPolicy(fs.readFileSync(path.join(ROOT, 'examples/compose-scaling-policy.yaml'), 'utf8'));
    if (!policy.ok) throw new Error(describeProblems(policy.error).join('\n'));
    expect(policy.value.map((p) => p.service)).to.deep.equal(endpoints.value.services.map((s) => s.name));
    expect(compose.services.inferplane.ports).to.deep.equal([`${DEFAULT_ADMIN_PORT}:${DEFAULT_ADMIN_PORT}`]);
  });

  it('lists exactly the simulators, at their addresses and port, serving the model the load asks for', () => {
    const endpoints = loadEndpointsFile(path.join(ROOT, 'examples/compose-endpoints.yaml'));
    if (!endpoints.ok) throw new Error('invalid');
    const sims = Object.entries<any>(compose.services).filter(([, s]) => s.command?.[0] === 'sim-vllm');
    expect(sims.map(([n]) => n)).to.deep.equal(['vllm-1', 'vllm-2', 'vllm-3']);
    const listed = endpoints.value.services[0]!.endpoints.map((e) => `${e.address}:${e.ports['http']}`);
    expect(sims.map(([, s]) => `${s.networks.fleet.ipv4_address}:${s.command[s.command.indexOf('--port') + 1]}`)).to.deep.equal(listed);
    const load = fs.readFileSync(path.join(ROOT, 'examples/k6-load.js'), 'utf8');
    for (const [, s] of sims) expect(load).to.contain(`model: '${s.command[s.command.indexOf('--model') + 1]}'`);
    expect(load).to.contain('http://envoy:10000/v1/completions');
  });
});
