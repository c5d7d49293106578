import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { runAggregate } from '../../src/simulate/aggregate.js';
import { loadScenario, withOverrides, type Scenario } from '../../src/simulate/scenario.js';
import type { ClassResult } from '../../src/simulate/results.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'playbooks-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const write = (name: string, text: string) => {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
};

/** A service with a chat and a batch route; `playbooks` in the endpoints-file schema. */
const endpoints = (playbooks: string, extra = '') => `services:
  - name: llama-8b
    routes:
      - { name: batch, prefix: /, headers: { x-priority: batch } }
      - { name: chat, prefix: / }
    settings:
      timeout: 60s
      playbooks:
${playbooks}
    endpoints: []
${extra}`;

const SMALL = `  - name: llama-3b
    endpoints: []
`;

/** Ten minutes at a constant rate, 70% chat and 30% batch, one policy run (its mode forced when `mode` is given). */
const scenarioText = (o: { rps?: number; mode?: string; service?: string; classes?: string }) => `duration: 10m
traffic:
  constant: { rps: ${o.rps ?? 2000} }
classes:
${o.classes ?? '  - { name: core, share: 0.7, route: chat }\n  - { name: batch, share: 0.3, route: batch }'}
service: ${o.service ?? '{ endpoints: e.yaml, name: llama-8b }'}
runs:
  - { name: run, scaling: { policy: default }${o.mode ? `, mode: ${o.mode}` : ''} }
`;

function load(text: string): Scenario {
  const s = loadScenario(write(`s-${Math.random().toString(36).slice(2)}.yaml`, text));
  if (!s.ok) throw new Error(s.error.join('\n'));
  return s.value;
}

function refused(text: string): string[] {
  const s = loadScenario(write(`s-${Math.random().toString(36).slice(2)}.yaml`, text));
  expect(s.ok, 'refused').to.equal(false);
  return s.ok ? [] : s.error;
}

const byName = (classes: readonly ClassResult[] | undefined, name: string) => classes!.find((c) => c.name === name)!;

describe('simulate: traffic classes and playbooks', () => {
  it('in normal mode nothing is shed and nothing falls back; each class has its own figures', () => {
    write('e.yaml', endpoints('        surge: { shed: [batch] }'));
    const r = runAggregate(load(scenarioText({})), load(scenarioText({})).runs[0]!);
    const core = byName(r.classes, 'core');
    const batch = byName(r.classes, 'batch');
    expect(core.requests / (core.requests + batch.requests)).to.be.closeTo(0.7, 1e-6);
    expect([core.shedPercent, batch.shedPercent, core.fallbackPercent, batch.timeouts]).to.deep.equal([0, 0, 0, 0]);
    expect(core.sloMinutes).to.equal(10);
  });

  it('a forced emergency sheds the batch route at the edge (503, retried once after Retry-After, shed again) and serves chat', () => {
    write('e.yaml', endpoints('        emergency: { shed: [batch], retryAfter: 60s }'));
    const s = load(scenarioText({ mode: 'emergency' }));
    const r = runAggregate(s, s.runs[0]!);
    const batch = byName(r.classes, 'batch');
    const core = byName(r.classes, 'core');
    expect(batch.shedPercent).to.be.closeTo(100, 1e-9);
    // Each batch request is answered 503 twice (its retry a minute later), but for those whose retry falls after the end.
    expect(batch.shedAnswers / batch.requests).to.be.within(1.85, 1.95);
    expect(core.shedPercent).to.equal(0);
    expect(core.sloMinutes).to.equal(10);
    // Only chat reaches the pods.
    expect(r.overall.requests / (core.requests + batch.requests)).to.be.closeTo(0.7, 1e-3);
  });

  it('a fallback sends the routes not shed to the fallback service\'s own fleet, whose GPU-hours count', () => {
    write('e.yaml', endpoints('        surge: { shed: [batch], fallback: llama-3b }', SMALL));
    const s = load(scenarioText({ mode: 'surge', service: '{ endpoints: e.yaml, name: llama-8b, fallbackFleet: { engine: llama-3.2-3b-h100-fp8, replicas: 3 } }' }));
    const r = runAggregate(s, s.runs[0]!);
    expect(byName(r.classes, 'core').fallbackPercent).to.be.closeTo(100, 1e-9);
    expect(byName(r.classes, 'batch').fallbackPercent).to.equal(0);
    expect(r.fallbackGpuHours).to.be.closeTo((3 * 10) / 60, 1e-9);
    expect(r.overall.gpuHours).to.be.above(r.fallbackGpuHours!);
  });

  it('a playbook timeout shorter than the answers cuts them: counted as timeouts, over the SLO', () => {
    write('e.yaml', endpoints('        emergency: { timeout: 50ms }'));
    const s = load(scenarioText({ mode: 'emergency' }));
    const r = runAggregate(s, s.runs[0]!);
    const core = byName(r.classes, 'core');
    expect(core.timeouts / core.requests).to.be.closeTo(1, 1e-3);
    expect(core.sloMinutes).to.equal(0);
  });

  it('refuses classes that do not add up to 100%, a route or fallback that does not exist, and an impossible engine, as file:line:column', () => {
    write('e.yaml', endpoints('        surge: { shed: [batch], fallback: llama-3b }', SMALL));
    const sum = refused(scenarioText({ classes: '  - { name: core, share: 0.7, route: chat }\n  - { name: batch, share: 0.2, route: batch }' }));
    expect(sum.join('\n')).to.match(/:5:3: classes: the shares add up to 90%, not 100%/);
    const route = refused(scenarioText({ classes: '  - { name: core, share: 0.7, route: chat }\n  - { name: batch, share: 0.3, route: bulk }', service: '{ endpoints: e.yaml, name: llama-8b, fallbackFleet: { replicas: 2 } }' }));
    expect(route.join('\n')).to.match(/:6:\d+: classes\[1\]\.route: "llama-8b" has no route "bulk"; its named routes: batch, chat/);
    const fleet = refused(scenarioText({}));
    expect(fleet.join('\n')).to.match(/service: a playbook falls back to "llama-3b": give fallbackFleet/);
    write('e2.yaml', endpoints('        surge: { shed: [batch], fallback: llama-70b }', SMALL));
    const missing = loadScenario(write('m.yaml', scenarioText({ service: '{ endpoints: e2.yaml, name: llama-8b }' })));
    expect(missing.ok ? [] : missing.error.join('\n')).to.match(/llama-70b/);
    const engine = refused(`${scenarioText({ service: '{ endpoints: e.yaml, name: llama-8b, fallbackFleet: { replicas: 2, engine: { gpu: { memoryGB: 80, bandwidthTBps: 0, tflopsBf16: 989 } } } }' })}`);
    expect(engine.join('\n')).to.match(/service\.fallbackFleet\.engine\.gpu\.bandwidthTBps: must be a number above zero/);
    const kv = refused(`duration: 1m\ntraffic: { constant: { rps: 10 } }\nfleet:\n  engine: { model: llama-3.1-70b, gpus: 1, weights: bf16 }\nruns:\n  - { name: x, scaling: { fixed: 1 } }\n`);
    expect(kv.join('\n')).to.match(/:4:\d+: fleet\.engine\.model\.params: 141\.2 GB of weights do not fit in 72\.0 GB/);
  });

  it('forces a mode only on a policy run, and keeps classes out of the per-request mode', () => {
    write('e.yaml', endpoints('        surge: { shed: [batch] }'));
    const forced = refused(scenarioText({}).replace('{ policy: default }', 'kpa').replace('scaling: kpa }', 'scaling: kpa, mode: surge }'));
    expect(forced.join('\n')).to.match(/runs\[0\]\.mode: only a policy run has modes to force/);
    expect(withOverrides(load(scenarioText({})), { mode: 'exact' })).to.deep.equal({ ok: false, error: '--mode exact: traffic classes and playbooks run in aggregate mode only' });
  });
});
