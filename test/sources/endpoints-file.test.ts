import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { Model } from '../../src/model/model.js';
import { createMemoryLogger } from '../../src/observability/log.js';
import { loadEndpointsFile, OFF_THREAD_BYTES, parseEndpointsFile, parseEndpointsFileOffThread, watchEndpointsFile } from '../../src/sources/file/endpoints-file.js';
import { eventually } from '../support/harness.js';
import { parseLocated } from '../../src/config/located.js';
import { readModel } from '../../src/model/validate.js';

describe('parseEndpointsFile', () => {
  const cases: [string, string, string][] = [
    ['bad YAML', 'services:\n  - name: a\n   endpoints: [\n', 'f.yaml:3:'],
    ['a duplicate key', 'services:\n  - name: a\n    name: b\n', 'f.yaml:3:5: Map keys must be unique'],
    ['a bad address, at its line', 'services:\n  - name: a\n    endpoints:\n      - address: 300.1.1.1\n        port: 80\n', 'f.yaml:4:18: services[0].endpoints[0].address: "300.1.1.1" is not an IPv4 or IPv6 address'],
    ['a port out of range, at its line', 'services:\n  - name: a\n    endpoints:\n      - { address: 10.0.0.1, port: 0 }\n', 'f.yaml:4:36: services[0].endpoints[0].port: 0 is out of range (1 to 65535)'],
    ['a duplicate service name', 'services:\n  - name: a\n  - name: a\n', 'f.yaml:3:11: services[1].name: duplicate service name "a"'],
    ['a top level that is not a mapping', '- a\n- b\n', 'f.yaml:1:1: (root): expected a mapping'],
    ['an empty file (a writer between truncating and writing)', '', 'f.yaml:1:1: the file is empty; refusing it (write "services: []" to serve nothing)'],
    ['a comments-only file', '# nothing yet\n\n', 'f.yaml:1:1: the file is empty'],
    ['a file without services', 'listener: { port: 10000 }\n', 'f.yaml:1:1: services: missing; refusing a file without it'],
    ['a billion-laughs document', `a: &a [x, x, x, x, x, x, x, x, x, x]\n${Array.from({ length: 8 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(', ')}]`).join('\n')}\nservices: []\n`, 'f.yaml:1:1: YAML: Excessive alias count'],
  ];
  for (const [what, text, message] of cases) {
    it(`rejects ${what} with file, line, column and field`, () => {
      const r = parseEndpointsFile(text, 'f.yaml');
      expect(r.ok).to.equal(false);
      if (!r.ok) expect(r.error.some((e) => e.startsWith(message)), JSON.stringify(r.error)).to.equal(true);
    });
  }

  it('reads JSON too, and the shipped example', () => {
    expect(parseEndpointsFile('{"services": [{"name": "a", "endpoints": [{"address": "::1", "port": 8}]}]}', 'f.json').ok).to.equal(true);
    const example = loadEndpointsFile(path.join(import.meta.dirname, '../../examples/endpoints.yaml'));
    expect(example.ok, JSON.stringify(!example.ok && example.error)).to.equal(true);
  });

  it('reads a valid file fast to the model the full parser gives, and leaves directives and tags to the full parser', () => {
    const full = (text: string) => {
      const doc = parseLocated(text, 'f.yaml');
      return doc.ok ? readModel(doc.value.value) : doc;
    };
    const example = fs.readFileSync(path.join(import.meta.dirname, '../../examples/endpoints.yaml'), 'utf8');
    const varied = [
      'services:',
      ...Array.from({ length: 40 }, (_, s) => [
        `  - name: "m-${s}"`,
        '    endpoints:',
        `      - { address: '10.0.0.${s}', port: 0x1F40, zone: zone-a, ready: ${s % 2 === 0 ? 'true' : 'False'} }`,
        `      - address: 10.0.1.${s}\n        port: 8001\n        zone: >-\n          zone-b\n        serving: TRUE\n        terminating: false`,
      ].join('\n')),
    ].join('\n');
    for (const text of [example, varied, JSON.stringify({ services: [{ name: 'a', endpoints: [{ address: '::1', port: 8 }] }] })]) {
      const fast = parseEndpointsFile(text, 'f.yaml');
      expect(fast.ok, JSON.stringify(!fast.ok && fast.error)).to.equal(true);
      expect(fast).to.deep.equal(full(text));
    }
    // YAML 1.1 reads `yes` as true, so this zone is not a string; a tag makes this port text.
    const yes = parseEndpointsFile('%YAML 1.1\n---\nservices:\n  - name: a\n    endpoints: [{ address: 10.0.0.1, port: 80, zone: yes }]\n', 'f.yaml');
    expect(!yes.ok && yes.error[0]).to.match(/^f\.yaml:5:\d+: services\[0\]\.endpoints\[0\]\.zone: /);
    const tagged = parseEndpointsFile('services:\n  - name: a\n    endpoints: [{ address: 10.0.0.1, port: !!float 80 }]\n', 'f.yaml');
    expect(!tagged.ok && tagged.error[0]).to.match(/^f\.yaml:3:\d+: services\[0\]\.endpoints\[0\]\.port: /);
  });

  it('takes an anchor reused by hundreds of endpoints, and an explicit empty service list', () => {
    const eps = Array.from({ length: 300 }, (_, i) => `      - { address: 10.0.${i >> 8}.${i & 255}, port: 80, zone: *za }`).join('\n');
    const r = parseEndpointsFile(`services:\n  - name: a\n    endpoints:\n      - { address: 10.1.0.1, port: 80, zone: &za zone-a }\n${eps}\n`, 'f.yaml');
    expect(r.ok, JSON.stringify(!r.ok && r.error)).to.equal(true);
    expect(r.ok && r.value.services[0]!.endpoints.filter((e) => e.zone === 'zone-a')).to.have.length(301);
    const none = parseEndpointsFile('services: []\n', 'f.yaml');
    expect(none.ok && none.value.services).to.deep.equal([]);
  });

  it('says when the file cannot be read', () => {
    const r = loadEndpointsFile('/nonexistent/endpoints.yaml');
    expect(!r.ok && r.error[0]).to.match(/^\/nonexistent\/endpoints.yaml: cannot read: ENOENT/);
  });
});

describe('watchEndpointsFile', () => {
  it('hands over each valid version, skips rewrites with the same text, and keeps the last good model on garbage', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-watch-'));
    const file = path.join(dir, 'e.yaml');
    fs.writeFileSync(file, 'services:\n  - name: a\n');
    const models: Model[] = [];
    const log = createMemoryLogger();
    const w = watchEndpointsFile(file, { log, onModel: (m) => models.push(m), debounceMs: 5, pollMs: 50 });
    try {
      expect(models.map((m) => m.services.map((s) => s.name))).to.deep.equal([['a']]);
      fs.writeFileSync(file, 'services:\n  - name: a\n  - name: b\n');
      await eventually(() => models.length === 2, 'second model');
      fs.writeFileSync(file, 'services: [ {name: a, endpoints: [{address: nope, port: 1}]} ]\n');
      await eventually(() => log.lines.some((l) => l.level === 'error'), 'error logged');
      expect(String(log.lines.find((l) => l.level === 'error')!.fields['problem'])).to.contain('"nope" is not an IPv4 or IPv6 address');
      // Truncated (a writer between truncate and write) and then aliased beyond the library default: neither
      // replaces the last good model nor stops the process.
      fs.writeFileSync(file, '');
      await eventually(() => log.lines.some((l) => String(l.fields['problem']).includes('the file is empty')), 'empty file refused');
      expect(models).to.have.length(2);
      fs.writeFileSync(file, `services:\n  - name: a\n  - name: b\n${Array.from({ length: 102 }, (_, i) => `  - { name: s${i}, endpoints: [{ address: 10.0.0.${i + 1}, port: 80, zone: ${i === 0 ? '&za zone-a' : '*za'} }] }`).join('\n')}\n`);
      await eventually(() => models.length === 3, 'aliased file taken');
      expect(models[2]!.services).to.have.length(104);
      fs.writeFileSync(file, 'services:\n  - name: a\n  - name: b\n');
      await eventually(() => models.length === 4, 'back to valid');
      w.reload(); // same text again: nothing new
      expect(models).to.have.length(4);
      expect(models[3]).to.deep.equal(models[1]);
    } finally {
      w.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('parses a large file on a worker thread into the same model, and refuses a bad one with the same errors', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-watch-'));
    const file = path.join(dir, 'e.yaml');
    const big = (services: number, port: number | string) => `services:\n${Array.from({ length: services }, (_, s) =>
      `  - name: s${s}\n    endpoints:\n${Array.from({ length: 8 }, (_, e) => `      - { address: 10.${s >> 8}.${s & 255}.${e}, port: ${s === services - 1 && e === 7 ? port : 8000}, zone: zone-${e % 3} }`).join('\n')}`).join('\n')}\n`;
    const good = big(400, 8000);
    const bad = big(400, 70000);
    expect(good.length).to.be.greaterThan(OFF_THREAD_BYTES);
    expect(await parseEndpointsFileOffThread(good, file)).to.deep.equal(parseEndpointsFile(good, file));
    const refused = await parseEndpointsFileOffThread(bad, file);
    expect(refused).to.deep.equal(parseEndpointsFile(bad, file));
    expect(!refused.ok && refused.error[0]).to.match(/e\.yaml:\d+:\d+: services\[399\]\.endpoints\[7\]\.port: 70000 is out of range/);

    fs.writeFileSync(file, good);
    const models: Model[] = [];
    const log = createMemoryLogger();
    const w = watchEndpointsFile(file, { log, onModel: (m) => models.push(m), debounceMs: 5, pollMs: 50 });
    try {
      expect(models).to.have.length(0); // off the event loop: not yet
      await eventually(() => models.length === 1, 'large file parsed');
      expect(models[0]!.services).to.have.length(400);
      fs.writeFileSync(file, bad);
      await eventually(() => log.lines.some((l) => String(l.fields['problem']).includes('70000 is out of range')), 'bad large file refused');
      fs.writeFileSync(file, big(401, 8000));
      await eventually(() => models.length === 2, 'next good file taken');
      expect(models[1]!.services).to.have.length(401);
    } finally {
      w.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
