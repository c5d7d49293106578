import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { parseAllDocuments } from 'yaml';
import { checkManifest } from '../support/k8s-schema.js';

const ROOT = path.join(import.meta.dirname, '../..');
const DIR = path.join(ROOT, 'k8s/monitoring');

/** Every metric the code registers, with the source file that registers it. */
function registered(): Map<string, string> {
  const out = new Map<string, string>();
  const files = (fs.readdirSync(path.join(ROOT, 'src'), { recursive: true }) as string[]).filter((f) => f.endsWith('.ts') && !f.startsWith('generated'));
  for (const f of files) {
    const text = fs.readFileSync(path.join(ROOT, 'src', f), 'utf8');
    for (const m of text.matchAll(/\.(counter|gauge|histogram)\(\s*'(inferplane_[a-z_]+)'/g)) {
      // A histogram's series carry its labels and `le`.
      if (m[1] === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) out.set(m[2]! + suffix, `${text}\n{ le }`);
      else out.set(m[2]!, text);
    }
  }
  return out;
}

/** Metric names and the label names matched on each, in a PromQL expression. */
function queried(expr: string): { metric: string; labels: string[] }[] {
  return [...expr.matchAll(/\b(inferplane_[a-z_]+)(\{([^}]*)\})?/g)].map((m) => ({
    metric: m[1]!,
    labels: [...(m[3] ?? '').matchAll(/([a-z_]+)\s*(=~|!=|!~|=)/g)].map((l) => l[1]!),
  }));
}

function byLabels(expr: string): string[] {
  return [...expr.matchAll(/\bby\s*\(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((s) => s.trim()).filter(Boolean));
}

const rules = parseAllDocuments(fs.readFileSync(path.join(DIR, 'prometheus-rules.yaml'), 'utf8')).map((d) => d.toJS() as any)[0];
const dashboard = JSON.parse(fs.readFileSync(path.join(DIR, 'grafana-dashboard.json'), 'utf8'));
const exprs: { where: string; expr: string }[] = [
  ...rules.spec.groups.flatMap((g: any) => g.rules.map((r: any) => ({ where: `alert ${r.alert}`, expr: r.expr as string }))),
  ...dashboard.panels.flatMap((p: any) => p.targets.map((t: any) => ({ where: `panel "${p.title}"`, expr: t.expr as string }))),
];

describe('k8s/monitoring: alerts and dashboard on the metrics inferplane exports', () => {
  const metrics = registered();

  it('query only metrics the code registers, and match only labels those metrics carry', () => {
    for (const { where, expr } of exprs) {
      const used = queried(expr);
      expect(used, `${where}: ${expr}`).to.not.have.length(0);
      for (const { metric, labels } of used) {
        expect(metrics.has(metric), `${where}: ${metric} is not a metric the code registers`).to.equal(true);
        for (const label of [...labels, ...byLabels(expr)]) {
          expect(new RegExp(`\\b${label}\\b\\s*[:,}]|\\{ ${label} \\}|\\b${label}\\b(?=,)`).test(metrics.get(metric)!), `${where}: label "${label}" is never set where ${metric} is registered`).to.equal(true);
        }
      }
      expect(expr.split('(').length, `${where}: parentheses`).to.equal(expr.split(')').length);
      expect(expr.split('{').length, `${where}: braces`).to.equal(expr.split('}').length);
    }
  });

  it('alert on what an operator must act on: out of sync, NACKs, stale stats, a scaler holding on bad data, failing scale writes, a rejected policy', () => {
    const alerts = rules.spec.groups.flatMap((g: any) => g.rules.map((r: any) => r.alert));
    expect(alerts).to.include.members(['InferplaneEnvoysOutOfSync', 'InferplaneEnvoysNacking', 'InferplaneStatsStale', 'InferplaneScalerHoldingOnBadData', 'InferplaneScaleWritesFailing', 'InferplanePolicyRejected']);
    for (const g of rules.spec.groups) for (const r of g.rules) expect(r.annotations?.summary, r.alert).to.be.a('string');
    expect(checkManifest(rules)).to.equal(undefined);
  });

  it('ship the dashboard through the kustomization, labelled for Grafana\'s sidecar, with unique panel ids', () => {
    const k = parseAllDocuments(fs.readFileSync(path.join(DIR, 'kustomization.yaml'), 'utf8'))[0]!.toJS() as any;
    expect(k.resources).to.deep.equal(['prometheus-rules.yaml']);
    expect(k.configMapGenerator[0].files).to.deep.equal(['inferplane.json=grafana-dashboard.json']);
    expect(k.configMapGenerator[0].options.labels).to.deep.equal({ grafana_dashboard: '1' });
    const ids = dashboard.panels.map((p: any) => p.id);
    expect(new Set(ids).size).to.equal(ids.length);
  });
});
