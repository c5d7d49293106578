import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { createMemoryLogger } from '../../src/observability/log.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { filePolicySource } from '../../src/scaler/policy-source.js';
import { eventually } from '../support/harness.js';

describe('policy file sources, active and shadow', () => {
  it('keeps a shadow policy\'s rejections, validity and log lines apart from the active policy\'s', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'policy-source-'));
    const good = path.join(dir, 'active.yaml');
    const bad = path.join(dir, 'candidate.yaml');
    fs.writeFileSync(good, 'services:\n  ml/a: { deployment: a }\n');
    fs.writeFileSync(bad, 'services:\n  ml/a: { deployment: a, tolerance: 3 }\n');
    const metrics = createMetrics();
    const log = createMemoryLogger();
    const active = filePolicySource(good, { log, metrics });
    const shadow = filePolicySource(bad, { log, metrics, role: 'shadow' });
    active.start();
    shadow.start();
    try {
      await eventually(() => active.current() !== undefined && shadow.status().rejected !== null, 'both read');
      expect(shadow.current()).to.equal(undefined);
      expect(shadow.status().rejected!.problems).to.deep.equal(['services.ml/a.tolerance: Too big: expected number to be <1']);
      expect(await metrics.value('inferplane_scaler_policy_valid')).to.equal(1);
      expect(await metrics.value('inferplane_scaler_policy_rejections_total')).to.equal(0);
      expect(await metrics.value('inferplane_scaler_shadow_policy_valid')).to.equal(0);
      expect(await metrics.value('inferplane_scaler_shadow_policy_rejections_total')).to.equal(1);
      expect(log.lines.map((l) => l.msg)).to.include.members(['scaling policy loaded', 'invalid shadow scaling policy; no shadow decisions until a valid one is read']);
    } finally {
      await active.stop();
      await shadow.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
