import type { RunResult } from './results.js';
import type { SimulationReport } from './simulate.js';

const fmt = (v: number | null, digits = 0) => (v === null || !Number.isFinite(v) ? '–' : v >= 1e6 ? `${(v / 1000).toFixed(0)} s` : v.toFixed(digits));
const pct = (v: number, digits = 2) => `${(v * 100).toFixed(digits)}%`;

/** GPU-hours of the oracle run, when the scenario has one: the lower bound the others are compared with. */
function oracleGpuHours(report: SimulationReport): number | null {
  return report.runs.find((r) => r.scaling.startsWith('oracle'))?.overall.gpuHours ?? null;
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).join('\n');
}

/** One line per run: latency, SLO, cost and churn, side by side. */
export function summaryTable(report: SimulationReport): string {
  const oracle = oracleGpuHours(report);
  return table([
    ['run', 'balancer', 'requests', 'p50 ms', 'p99 ms', 'p99.9 ms', 'over SLO', 'SLO minutes', 'GPU-hours', '×oracle', 'scale events', 'peak pods'],
    ...report.runs.map((r) => {
      const o = r.overall;
      return [r.name, r.balancer, String(o.requests), fmt(o.p50Ms), fmt(o.p99Ms), fmt(o.p999Ms), pct(o.overSloFraction, 3),
        `${o.sloMinutes}/${o.minuteCount} (${pct(o.sloMinutes / Math.max(1, o.minuteCount), 2)})`, o.gpuHours.toFixed(1), oracle ? `×${(o.gpuHours / oracle).toFixed(2)}` : '–',
        String(o.scaleEvents), String(o.peakPods)];
    }),
  ]);
}

/**
 * One line per run and traffic class (scenarios with `classes`): the class's own SLO minutes and latency, and
 * what the playbooks did to it: requests shed (503 on every attempt), served by the fallback, cut at the timeout.
 * Empty when the scenario has no classes.
 */
export function classTable(report: SimulationReport): string {
  const rows = report.runs.flatMap((r) => (r.classes ?? []).map((c) => [r.name, c.name, c.route ?? '–', `${(c.sloMs / 1000).toString()} s`, String(c.requests), fmt(c.p50Ms), fmt(c.p99Ms),
    `${c.sloMinutes}/${c.minuteCount}`, `${c.shedPercent.toFixed(3)}%`, `${c.fallbackPercent.toFixed(2)}%`, String(c.timeouts)]));
  if (rows.length === 0) return '';
  return table([['run', 'class', 'route', 'SLO', 'requests', 'p50 ms', 'p99 ms', 'SLO minutes', 'shed', 'fallback', 'timeouts'], ...rows]);
}

/**
 * Per-minute rows of one run (every minute, or one row per `every` minutes: the worst p99 and the sums of that
 * span, so a bad minute is never averaged away).
 */
export function minuteTable(run: RunResult, every = 1): string {
  const rows: string[][] = [['minute', 'requests', 'p50 ms', 'p99 ms', 'p99.9 ms', 'over SLO', 'desired', 'ready', 'pods', 'GPU-hours', 'scale events']];
  for (let i = 0; i < run.minutes.length; i += every) {
    const span = run.minutes.slice(i, i + every);
    const worst = (k: 'p50Ms' | 'p99Ms' | 'p999Ms') => Math.max(...span.map((m) => m[k] ?? -Infinity));
    const last = span[span.length - 1]!;
    rows.push([every === 1 ? String(span[0]!.minute) : `${span[0]!.minute}-${last.minute}`, String(span.reduce((n, m) => n + m.requests, 0)), fmt(worst('p50Ms')), fmt(worst('p99Ms')), fmt(worst('p999Ms')),
      String(span.reduce((n, m) => n + m.overSlo, 0)), String(last.desired), String(last.ready), String(last.pods), span.reduce((n, m) => n + m.gpuHours, 0).toFixed(2), String(span.reduce((n, m) => n + m.scaleEvents, 0))]);
  }
  return table(rows);
}

const esc = (v: unknown) => String(v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const COLORS = ['#2f5fd0', '#d0442f', '#1f7a3a', '#8a5a00', '#7a2fd0', '#2fa8d0', '#d02f8f', '#555'];

/** An SVG line chart of one per-minute value per run; `log` for latencies. */
function lineChart(id: string, title: string, runs: readonly RunResult[], value: (m: RunResult['minutes'][number]) => number | null, unit: string, log: boolean, mark?: number): string {
  const W = 900, H = 260, L = 60, R = 10, T = 24, B = 30;
  const all = runs.flatMap((r) => r.minutes.map(value)).filter((v): v is number => v !== null && Number.isFinite(v) && v > 0);
  if (all.length === 0) return `<figure id="${id}"><figcaption>${esc(title)}</figcaption><p>No data.</p></figure>`;
  const minutes = Math.max(...runs.map((r) => r.minutes.length));
  let lo = log ? Math.min(...all) : 0;
  let hi = Math.max(...all, mark ?? 0);
  if (log) {
    lo = Math.pow(10, Math.floor(Math.log10(lo)));
    hi = Math.pow(10, Math.ceil(Math.log10(hi)));
  }
  const y = (v: number) => {
    const f = log ? (Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) : (v - lo) / (hi - lo || 1);
    return T + (H - T - B) * (1 - Math.min(1, Math.max(0, f)));
  };
  const x = (i: number) => L + ((W - L - R) * i) / Math.max(1, minutes - 1);
  const ticks = log ? Array.from({ length: Math.round(Math.log10(hi / lo)) + 1 }, (_, k) => lo * Math.pow(10, k)) : [0, hi / 4, hi / 2, (3 * hi) / 4, hi];
  const grid = ticks.map((v) => `<line x1="${L}" x2="${W - R}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e5ea"/><text x="${L - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${esc(v >= 1000 && log ? `${v / 1000} s` : Math.round(v))}</text>`).join('');
  const hours = minutes > 180 ? Array.from({ length: Math.floor(minutes / 60 / 3) + 1 }, (_, k) => k * 180) : Array.from({ length: Math.floor(minutes / 10) + 1 }, (_, k) => k * 10);
  const xTicks = hours.filter((m) => m < minutes).map((m) => `<text x="${x(m).toFixed(1)}" y="${H - 10}" text-anchor="middle">${minutes > 180 ? `${m / 60}h` : `${m}m`}</text>`).join('');
  const lines = runs.map((r, k) => {
    let d = '';
    r.minutes.forEach((m, i) => {
      const v = value(m);
      if (v === null || !Number.isFinite(v) || (log && v <= 0)) return;
      d += `${d ? 'L' : 'M'}${x(i).toFixed(1)} ${y(v).toFixed(1)}`;
    });
    return `<path class="series" data-run="${esc(r.name)}" d="${d}" fill="none" stroke="${COLORS[k % COLORS.length]}" stroke-width="1.5"/>`;
  }).join('');
  const slo = mark !== undefined ? `<line x1="${L}" x2="${W - R}" y1="${y(mark).toFixed(1)}" y2="${y(mark).toFixed(1)}" stroke="#a11a1a" stroke-dasharray="5 4"/><text x="${W - R}" y="${(y(mark) - 4).toFixed(1)}" text-anchor="end" fill="#a11a1a">SLO</text>` : '';
  return `<figure id="${id}"><figcaption>${esc(title)} <span class="unit">(${esc(unit)})</span></figcaption><svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}">${grid}${xTicks}${slo}${lines}</svg>${legend(runs)}</figure>`;
}

function legend(runs: readonly RunResult[]): string {
  return `<div class="legend">${runs.map((r, k) => `<span><i style="background:${COLORS[k % COLORS.length]}"></i>${esc(r.name)}</span>`).join('')}</div>`;
}

/** Horizontal bars of one overall value per run. */
function barChart(id: string, title: string, runs: readonly RunResult[], value: (r: RunResult) => number, label: (v: number) => string): string {
  const W = 900, row = 26, L = 160;
  const max = Math.max(...runs.map(value), 1e-9);
  const bars = runs.map((r, k) => {
    const v = value(r);
    const w = ((W - L - 260) * v) / max;
    return `<text x="${L - 8}" y="${k * row + 18}" text-anchor="end">${esc(r.name)}</text><rect class="bar" data-run="${esc(r.name)}" x="${L}" y="${k * row + 5}" width="${w.toFixed(1)}" height="${row - 10}" fill="${COLORS[k % COLORS.length]}"/><text x="${(L + w + 6).toFixed(1)}" y="${k * row + 18}">${esc(label(v))}</text>`;
  }).join('');
  return `<figure id="${id}"><figcaption>${esc(title)}</figcaption><svg viewBox="0 0 ${W} ${runs.length * row + 6}" role="img" aria-label="${esc(title)}">${bars}</svg></figure>`;
}

/**
 * The report as one self-contained HTML document: the summary table and SVG charts (p99 per minute, ready
 * pods per minute, SLO minutes and GPU-hours per run), no script, no outside address, so it opens anywhere,
 * offline, and can be mailed.
 */
export function renderHtml(report: SimulationReport): string {
  const s = report.scenario;
  const oracle = oracleGpuHours(report);
  const rows = report.runs.map((r) => {
    const o = r.overall;
    return `<tr data-run="${esc(r.name)}"><td>${esc(r.name)}</td><td>${esc(r.balancer)}</td><td>${esc(r.scaling)}</td><td>${o.requests.toLocaleString('en-US')}</td><td>${fmt(o.p50Ms)}</td><td>${fmt(o.p99Ms)}</td><td>${fmt(o.p999Ms)}</td><td>${pct(o.overSloFraction, 3)}</td><td>${o.sloMinutes}/${o.minuteCount} (${pct(o.sloMinutes / Math.max(1, o.minuteCount))})</td><td>${o.gpuHours.toFixed(1)}</td><td>${oracle ? `×${(o.gpuHours / oracle).toFixed(2)}` : '–'}</td><td>${o.scaleEvents}</td><td>${o.peakPods}</td></tr>`;
  }).join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<title>inferplane simulate: ${esc(s.file)}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d1d1f; max-width: 1000px; }
table { border-collapse: collapse; font-size: 13px; } th, td { padding: 3px 8px; border-bottom: 1px solid #e2e2e6; text-align: right; } th:first-child, td:first-child, td:nth-child(2), td:nth-child(3) { text-align: left; }
figure { margin: 24px 0; } figcaption { font-weight: 600; margin-bottom: 4px; } .unit { color: #6b6b70; font-weight: 400; }
svg { width: 100%; height: auto; font-size: 11px; fill: #1d1d1f; } .legend span { margin-right: 14px; font-size: 12px; } .legend i { display: inline-block; width: 14px; height: 3px; vertical-align: middle; margin-right: 4px; }
.meta { color: #6b6b70; }
</style></head><body>
<h1>What-if simulation</h1>
<p class="meta">${esc(s.file)} · ${esc(s.traffic)} · ${(s.durationS / 3600).toFixed(s.durationS % 3600 ? 2 : 0)} h simulated (${esc(s.mode)} mode, seed ${s.seed}) · SLO p99 ≤ ${s.sloMs} ms per minute · ${s.balancers} balancers<br>
${report.runs.length} runs in ${report.wallSeconds.toFixed(1)} s on ${esc(report.machine.cpu)} (${report.machine.cores} cores), Node ${esc(report.machine.node)}: ${Math.round(report.simulatedRequestsPerSecond).toLocaleString('en-US')} simulated requests/s</p>
<table id="summary"><thead><tr><th>run</th><th>balancer</th><th>scaling</th><th>requests</th><th>p50 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>over SLO</th><th>SLO minutes</th><th>GPU-hours</th><th>×oracle</th><th>scale events</th><th>peak pods</th></tr></thead><tbody>${rows}</tbody></table>
${lineChart('p99', 'p99 latency per minute', report.runs, (m) => m.p99Ms, 'ms, log scale', true, s.sloMs)}
${lineChart('replicas', 'Ready pods per minute', report.runs, (m) => m.ready, 'pods', false)}
${barChart('slo-minutes', 'Minutes within the SLO', report.runs, (r) => r.overall.sloMinutes / Math.max(1, r.overall.minuteCount), (v) => pct(v))}
${barChart('gpu-hours', 'GPU-hours', report.runs, (r) => r.overall.gpuHours, (v) => `${v.toFixed(1)}${oracle ? ` (×${(v / oracle).toFixed(2)} the oracle)` : ''}`)}
</body></html>
`;
}
