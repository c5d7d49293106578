import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { DEFAULT_POLICY } from '../../src/scaler/decide.js';
import { describeProblems, readPolicy } from '../../src/scaler/policy.js';

describe('readPolicy', () => {
  it('reads the documented example, merging service over defaults over built-ins', () => {
    const r = readPolicy(fs.readFileSync(path.join(import.meta.dirname, '../../examples/scaling-policy.yaml'), 'utf8'));
    if (!r.ok) throw new Error(describeProblems(r.error).join('\n'));
    expect(r.value).to.have.length(1);
    const s = r.value[0]!;
    expect(s.service).to.equal('ml/llama-8b');
    expect(s.deployment).to.deep.equal({ namespace: 'ml', name: 'llama-8b' });
    expect(s.policy).to.deep.equal({ ...DEFAULT_POLICY, minReplicas: 4, maxReplicas: 400 });
  });

  it('applies partial overrides per service and per mode, and forced modes', () => {
    const r = readPolicy('defaults: { stableWindow: 2m, modes: { normal: { targetPerPod: 100 } } }\nservices:\n  ml/a: { deployment: a, mode: surge, tolerance: 0.05, scaleDownTolerance: 0.01 }\n  ml/b: { deployment: b }\n');
    if (!r.ok) throw new Error(describeProblems(r.error).join('\n'));
    const [a, b] = r.value;
    expect(a!.policy).to.include({ stableWindowMs: 120_000, forcedMode: 'surge', tolerance: 0.05, scaleDownTolerance: 0.01 });
    expect(a!.policy.modes.normal).to.deep.equal({ ...DEFAULT_POLICY.modes.normal, targetPerPod: 100 });
    expect(b!.policy).to.include({ forcedMode: null, tolerance: 0.03, scaleDownTolerance: 0.02, scaleDownWindowMs: 180_000 });
  });

  it('places Deployments in the service\'s namespace unless named with one; bare names are in default', () => {
    const r = readPolicy('services:\n  ml/a: { deployment: a }\n  ml/b: { deployment: gpu/b }\n  c: { deployment: c, externalChangeCoolOff: 2m }\n');
    if (!r.ok) throw new Error(describeProblems(r.error).join('\n'));
    expect(r.value.map((s) => s.deployment)).to.deep.equal([{ namespace: 'default', name: 'c' }, { namespace: 'ml', name: 'a' }, { namespace: 'gpu', name: 'b' }]);
    expect(r.value[0]!.policy.externalCoolOffMs).to.equal(120_000);
  });

  const bad: [string, string, string][] = [
    ['a wrong type', 'services: { ml/a: { deployment: a, minReplicas: "two" } }', 'services.ml/a.minReplicas: Invalid input: expected number'],
    ['min above max', 'services: { ml/a: { deployment: a, minReplicas: 5, maxReplicas: 2 } }', 'services.ml/a.minReplicas: minReplicas 5 is above maxReplicas 2'],
    ['a zero target', 'defaults: { modes: { normal: { targetPerPod: 0 } } }\nservices: {}', 'defaults.modes.normal.targetPerPod: Too small'],
    ['a negative target', 'services: { ml/a: { deployment: a, modes: { surge: { targetPerPod: -5 } } } }', 'services.ml/a.modes.surge.targetPerPod: Too small'],
    ['an unknown key', 'defaults: { minReplica: 1 }\nservices: {}', 'defaults: unknown key "minReplica"'],
    ['an unknown top-level key', 'service: {}', '(root): unknown key "service"'],
    ['an unknown mode', 'services: { ml/a: { deployment: a, mode: panic } }', 'services.ml/a.mode: Invalid option'],
    ['a bad duration', 'defaults: { stableWindow: forever }\nservices: {}', 'defaults.stableWindow: "forever" is not a duration'],
    ['a panic window longer than the stable one', 'defaults: { panicWindow: 2m }\nservices: {}', 'defaults.panicWindow: panicWindow must be above zero and shorter than stableWindow'],
    ['thresholds out of order', 'defaults: { modeThresholds: { surge: 4, emergency: 2 } }\nservices: {}', 'defaults.modeThresholds.emergency: the emergency threshold must be above the surge threshold'],
    ['a service without a deployment', 'services: { ml/a: { minReplicas: 1 } }', 'services.ml/a.deployment: Invalid input'],
    ['a service key that is not a served name', 'services: { ML/a: { deployment: a } }', 'services.ML/a: service keys are the served names'],
    ['a deployment that is not a name', 'services: { ml/a: { deployment: "a/b/c" } }', 'services.ml/a.deployment: a Deployment: name'],
    ['scale to zero', 'services: { ml/a: { deployment: a, minReplicas: 0 } }', 'services.ml/a.minReplicas: must be at least 1'],
    ['a zero cool-off', 'defaults: { externalChangeCoolOff: -1s }\nservices: {}', 'defaults.externalChangeCoolOff: '],
    ['a missing services key', 'defaults: {}', 'services: Invalid input'],
    ['bad YAML', 'services: { ml/a: [', '(root): YAML: '],
    ['a duplicate key', 'services: {}\nservices: {}', '(root): YAML: Map keys must be unique'],
    ['a surge target looser than normal\'s', 'defaults: { modes: { normal: { targetPerPod: 5 }, surge: { targetPerPod: 126 } } }\nservices: {}', "defaults.modes.surge.targetPerPod: 126 is looser than normal's 5"],
    ['a billion-laughs document', `a: &a [x, x, x, x, x, x, x, x, x, x]\n${Array.from({ length: 8 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(', ')}]`).join('\n')}\n`, '(root): YAML: Excessive alias count'],
  ];
  it('moves surge and emergency targets with normal\'s when only normal\'s is set (the compose demo), and takes one anchor reused by many services', () => {
    const r = readPolicy(fs.readFileSync(path.join(import.meta.dirname, '../../examples/compose-scaling-policy.yaml'), 'utf8'));
    expect(r.ok, JSON.stringify(!r.ok && r.error)).to.equal(true);
    const modes = r.ok ? r.value[0]!.policy.modes : undefined;
    expect(modes?.surge.targetPerPod).to.equal(5);
    expect(modes?.emergency.targetPerPod).to.be.closeTo((5 * 86) / 98, 1e-9);
    const many = readPolicy(`services:\n${Array.from({ length: 101 }, (_, i) => `  s${i}: ${i === 0 ? '&common { deployment: d, maxReplicas: 8 }' : '*common'}`).join('\n')}\n`);
    expect(many.ok && many.value).to.have.length(101);
  });

  for (const [what, text, message] of bad) {
    it(`rejects ${what}, naming the key`, () => {
      const r = readPolicy(text);
      expect(r.ok).to.equal(false);
      if (!r.ok) {
        const lines = describeProblems(r.error);
        expect(lines.some((l) => l.startsWith(message)), JSON.stringify(lines)).to.equal(true);
      }
    });
  }
});
