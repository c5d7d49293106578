import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';

const ROOT = path.join(import.meta.dirname, '..');
const lines = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8').split('\n').filter((l) => l.trim() && !l.startsWith('#'));

/** No Docker engine runs here: these check what can be checked without building the image. */
describe('Dockerfile (structure; the image is not built in this environment)', () => {
  it('builds in one stage and runs from a second, as a non-root user', () => {
    expect(lines.filter((l) => l.startsWith('FROM '))).to.have.length(2);
    const runtime = lines.slice(lines.lastIndexOf(lines.filter((l) => l.startsWith('FROM ')).pop()!));
    expect(runtime).to.include('USER node');
    // The one RUN of the runtime image installs its allocator; nothing else is built there.
    expect(runtime.filter((l) => l.startsWith('RUN '))).to.deep.equal(['RUN apt-get update && apt-get install -y --no-install-recommends libjemalloc2 && rm -rf /var/lib/apt/lists/*']);
  });

  it('copies only files that exist, and starts the compiled CLI the build produces', () => {
    for (const l of lines.filter((x) => x.startsWith('COPY ') && !x.includes('--from'))) {
      for (const src of l.split(/\s+/).slice(1, -1)) expect(fs.existsSync(path.join(ROOT, src)), src).to.equal(true);
    }
    const build = JSON.parse(fs.readFileSync(path.join(ROOT, 'tsconfig.build.json'), 'utf8'));
    expect(build.include).to.deep.equal(['src']);
    expect(lines).to.include('ENTRYPOINT ["node", "dist/src/main.js"]');
  });
});
