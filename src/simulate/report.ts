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

/**
 * The report's conclusion in a few sentences: which runs keep the most minutes within the SLO, which of those
 * costs the fewest GPU-hours (the oracle aside: it is a bound, not a scaler), and how each inferplane policy run
 * compares with each KPA-like and HPA-like run, by how much. Per class when the scenario has classes.
 */
export function verdict(report: SimulationReport): string[] {
  const runs = report.runs.filter((r) => !r.scaling.startsWith('oracle'));
  if (runs.length === 0) return [];
  const oracle = oracleGpuHours(report);
  const x = (r: RunResult) => (oracle ? ` (×${(r.overall.gpuHours / oracle).toFixed(2)} the oracle)` : '');
  const gpu = (r: RunResult) => `${Math.round(r.overall.gpuHours).toLocaleString('en-US')} GPU-hours${x(r)}`;
  const minutesOf = (r: RunResult) => (r.classes?.[0] ? r.classes[0].sloMinutes : r.overall.sloMinutes);
  const what = report.runs[0]?.classes?.[0] ? `minutes within the SLO for class ${report.runs[0].classes[0].name}` : 'minutes within the SLO';
  const best = Math.max(...runs.map(minutesOf));
  const top = runs.filter((r) => minutesOf(r) === best);
  const cheapest = top.reduce((a, b) => (b.overall.gpuHours < a.overall.gpuHours ? b : a));
  const total = runs[0]!.overall.minuteCount;
  const out = [top.length === 1
    ? `Most ${what}: ${cheapest.name} (${best} of ${total}), at ${gpu(cheapest)}.`
    : `Most ${what}: ${top.map((r) => r.name).join(', ')} (${best} of ${total}); of those, ${cheapest.name} costs the least: ${gpu(cheapest)}.`];
  const ours = runs.filter((r) => r.scaling.startsWith('inferplane'));
  const baselines = runs.filter((r) => r.scaling.startsWith('KPA') || r.scaling.startsWith('HPA'));
  for (const o of ours) {
    for (const b of baselines) {
      const dm = minutesOf(o) - minutesOf(b);
      const dg = (o.overall.gpuHours / b.overall.gpuHours - 1) * 100;
      const minutes = dm === 0 ? 'the same minutes' : `${Math.abs(dm)} ${dm > 0 ? 'more' : 'fewer'} minute${Math.abs(dm) === 1 ? '' : 's'}`;
      const cost = Math.abs(dg) < 0.05 ? 'the same GPU-hours' : `${Math.abs(dg).toFixed(1)}% ${dg < 0 ? 'fewer' : 'more'} GPU-hours`;
      const wins = dm >= 0 && dg <= 0 ? 'better or equal on both' : dm <= 0 && dg >= 0 ? 'worse or equal on both' : 'a trade';
      out.push(`${o.name} against ${b.name}: ${minutes} within the SLO, ${cost} (${wins}).`);
    }
  }
  const saturated = report.runs.filter((r) => (r.saturatedMinutes?.length ?? 0) > 0);
  if (report.scenario.mode === 'aggregate' && saturated.length > 0) {
    out.push(`Warning: in ${saturated.map((r) => `${r.name} (${r.saturatedMinutes!.length} minute${r.saturatedMinutes!.length === 1 ? '' : 's'})`).join(', ')} requests queued beyond full batches. There the aggregate mode is outside the range it was checked in: it overstates the queue and that minute's p99 (up to 1.5× overall, BENCHMARKS.md). Check those minutes with --mode exact on a shorter --duration.`);
  }
  return out;
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
  const services = report.runs.filter((r) => r.fallbackGpuHours !== undefined).map((r) => `${r.name}: ${(r.overall.gpuHours - r.fallbackGpuHours!).toFixed(1)} GPU-hours on the service's fleet, ${r.fallbackGpuHours!.toFixed(1)} on the fallback's`);
  return table([['run', 'class', 'route', 'SLO', 'requests', 'p50 ms', 'p99 ms', 'SLO minutes', 'shed', 'fallback', 'timeouts'], ...rows]) + (services.length > 0 ? `\n${services.join('\n')}` : '');
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
/** A dash pattern per series beside its colour, so lines that overlap (or print in grey) stay apart. */
const DASHES = ['', '8 4', '2 3', '10 3 2 3', '4 4', '1 4', '12 4 2 4 2 4', '6 2'];
/** A marker shape per series, drawn every few points. */
const MARKERS = ['circle', 'square', 'triangle', 'diamond', 'circle', 'square', 'triangle', 'diamond'];

function marker(k: number, cx: number, cy: number, color: string): string {
  const m = MARKERS[k % MARKERS.length];
  const r = 3.2;
  if (m === 'circle') return `<circle cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="${r}" fill="${color}"/>`;
  if (m === 'square') return `<rect x="${(cx - r).toFixed(1)}" y="${(cy - r).toFixed(1)}" width="${2 * r}" height="${2 * r}" fill="${color}"/>`;
  if (m === 'triangle') return `<path d="M${cx.toFixed(1)} ${(cy - r - 0.5).toFixed(1)}L${(cx + r).toFixed(1)} ${(cy + r).toFixed(1)}L${(cx - r).toFixed(1)} ${(cy + r).toFixed(1)}Z" fill="${color}"/>`;
  return `<path d="M${cx.toFixed(1)} ${(cy - r - 0.5).toFixed(1)}L${(cx + r + 0.5).toFixed(1)} ${cy.toFixed(1)}L${cx.toFixed(1)} ${(cy + r + 0.5).toFixed(1)}L${(cx - r - 0.5).toFixed(1)} ${cy.toFixed(1)}Z" fill="${color}"/>`;
}

/** Evenly spaced ticks at a round step (1, 2 or 5 × a power of ten) from 0 to at least `hi`. */
function niceTicks(hi: number, target = 5): number[] {
  const raw = Math.max(hi, 1e-9) / target;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * p).find((v) => v >= raw)!;
  const n = Math.ceil(hi / step - 1e-9);
  return Array.from({ length: n + 1 }, (_, i) => i * step);
}

/** A latency in ms as the axis shows it: ms below a second, s above. */
const msLabel = (v: number) => (v >= 1000 ? `${+(v / 1000).toPrecision(3)} s` : `${+v.toPrecision(3)} ms`);

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
  const linearTicks = log ? [] : niceTicks(hi);
  if (!log) hi = linearTicks[linearTicks.length - 1]!;
  const y = (v: number) => {
    const f = log ? (Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) : (v - lo) / (hi - lo || 1);
    return T + (H - T - B) * (1 - Math.min(1, Math.max(0, f)));
  };
  const x = (i: number) => L + ((W - L - R) * i) / Math.max(1, minutes - 1);
  const ticks = log ? Array.from({ length: Math.round(Math.log10(hi / lo)) + 1 }, (_, k) => lo * Math.pow(10, k)) : linearTicks;
  const grid = ticks.map((v) => `<line x1="${L}" x2="${W - R}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e5ea"/><text class="tick" x="${L - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${esc(log ? msLabel(v) : `${+v.toPrecision(6)}${unit === 'pods' ? '' : ` ${unit}`}`)}</text>`).join('');
  // Whole hours (every 3 h, or every hour on a short day) or every 10 minutes, labelled with their unit.
  const stepMin = minutes > 12 * 60 ? 180 : minutes > 180 ? 60 : 10;
  const xTicks = Array.from({ length: Math.floor((minutes - 1) / stepMin) + 1 }, (_, k) => k * stepMin)
    .map((m) => `<line x1="${x(m).toFixed(1)}" x2="${x(m).toFixed(1)}" y1="${H - B}" y2="${H - B + 4}" stroke="#888"/><text class="tick" x="${x(m).toFixed(1)}" y="${H - 10}" text-anchor="middle">${stepMin >= 60 ? `${m / 60} h` : `${m} min`}</text>`).join('');
  const every = Math.max(1, Math.round(minutes / 24));
  const lines = runs.map((r, k) => {
    let d = '';
    let marks = '';
    const color = COLORS[k % COLORS.length]!;
    r.minutes.forEach((m, i) => {
      const v = value(m);
      if (v === null || !Number.isFinite(v) || (log && v <= 0)) return;
      d += `${d ? 'L' : 'M'}${x(i).toFixed(1)} ${y(v).toFixed(1)}`;
      // Markers offset per series, so that coinciding lines still show each one's shape.
      if ((i + k * Math.max(1, Math.floor(every / runs.length))) % every === 0) marks += marker(k, x(i), y(v), color);
    });
    const dash = DASHES[k % DASHES.length] ? ` stroke-dasharray="${DASHES[k % DASHES.length]}"` : '';
    return `<path class="series" data-run="${esc(r.name)}" d="${d}" fill="none" stroke="${color}" stroke-width="1.5"${dash}/><g class="markers">${marks}</g>`;
  }).join('');
  const slo = mark !== undefined ? `<line x1="${L}" x2="${W - R}" y1="${y(mark).toFixed(1)}" y2="${y(mark).toFixed(1)}" stroke="#a11a1a" stroke-dasharray="5 4"/><text x="${W - R}" y="${(y(mark) - 4).toFixed(1)}" text-anchor="end" fill="#a11a1a">SLO</text>` : '';
  return `<figure id="${id}"><figcaption>${esc(title)} <span class="unit">(${esc(unit)}; time of day on the x-axis)</span></figcaption><svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}">${grid}${xTicks}${slo}${lines}</svg>${legend(runs)}</figure>`;
}

function legend(runs: readonly RunResult[]): string {
  return `<div class="legend">${runs.map((r, k) => {
    const color = COLORS[k % COLORS.length]!;
    const dash = DASHES[k % DASHES.length] ? ` stroke-dasharray="${DASHES[k % DASHES.length]}"` : '';
    return `<span><svg class="key" viewBox="0 0 40 10" width="40" height="10"><line x1="0" x2="40" y1="5" y2="5" stroke="${color}" stroke-width="2"${dash}/>${marker(k, 20, 5, color)}</svg>${esc(r.name)}</span>`;
  }).join('')}</div>`;
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

/** The per-class table of the HTML report (scenarios with classes), or nothing. */
function classRows(report: SimulationReport): string {
  const rows = report.runs.flatMap((r) => (r.classes ?? []).map((c) => `<tr><td>${esc(r.name)}</td><td>${esc(c.name)}</td><td>${esc(c.route ?? '–')}</td><td>${c.requests.toLocaleString('en-US')}</td><td>${fmt(c.p50Ms)}</td><td>${fmt(c.p99Ms)}</td><td>${c.sloMinutes}/${c.minuteCount}</td><td>${c.shedPercent.toFixed(3)}%</td><td>${c.fallbackPercent.toFixed(2)}%</td><td>${c.timeouts.toLocaleString('en-US')}</td></tr>`));
  if (rows.length === 0) return '';
  return `<table id="classes"><caption>Per traffic class (shed: answered 503 on every attempt; fallback: served by the fallback service's fleet)</caption><thead><tr><th>run</th><th>class</th><th>route</th><th>requests</th><th>p50 ms</th><th>p99 ms</th><th>SLO minutes</th><th>shed</th><th>fallback</th><th>timeouts</th></tr></thead><tbody>${rows.join('')}</tbody></table>\n`;
}

/**
 * The report as one self-contained HTML document: the written verdict ({@link verdict}), the summary table (and
 * per-class one), and SVG charts (p99 per minute, ready pods per minute, SLO minutes and GPU-hours per run; each
 * series with its own colour, dash and marker), no script, no outside address, so it opens anywhere, offline,
 * and can be mailed.
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
svg { width: 100%; height: auto; font-size: 11px; fill: #1d1d1f; } .legend span { margin-right: 14px; font-size: 12px; white-space: nowrap; } .legend svg.key { width: 40px; height: 10px; vertical-align: middle; margin-right: 4px; }
.verdict { background: #f4f6fb; border-left: 4px solid #2f5fd0; padding: 8px 12px; } .verdict p { margin: 4px 0; } .verdict .warning { color: #8a3a00; }
.meta { color: #6b6b70; }
</style></head><body>
<h1>What-if simulation</h1>
<section class="verdict" id="verdict">${verdict(report).map((v) => `<p${v.startsWith('Warning') ? ' class="warning"' : ''}>${esc(v)}</p>`).join('')}</section>
<p class="meta">${esc(s.file)} · ${esc(s.traffic)} · ${(s.durationS / 3600).toFixed(s.durationS % 3600 ? 2 : 0)} h simulated (${esc(s.mode)} mode, seed ${s.seed}) · SLO p99 ≤ ${s.sloMs} ms per minute · ${s.balancers} balancers<br>
${report.runs.length} runs in ${report.wallSeconds.toFixed(1)} s on ${esc(report.machine.cpu)} (${report.machine.cores} cores), Node ${esc(report.machine.node)}: ${Math.round(report.simulatedRequestsPerSecond).toLocaleString('en-US')} simulated requests/s</p>
${classRows(report)}<table id="summary"><thead><tr><th>run</th><th>balancer</th><th>scaling</th><th>requests</th><th>p50 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>over SLO</th><th>SLO minutes</th><th>GPU-hours</th><th>×oracle</th><th>scale events</th><th>peak pods</th></tr></thead><tbody>${rows}</tbody></table>
${lineChart('p99', 'p99 latency per minute', report.runs, (m) => m.p99Ms, 'log scale', true, s.sloMs)}
${lineChart('replicas', 'Ready pods per minute', report.runs, (m) => m.ready, 'pods', false)}
${barChart('slo-minutes', 'Minutes within the SLO', report.runs, (r) => r.overall.sloMinutes / Math.max(1, r.overall.minuteCount), (v) => pct(v))}
${barChart('gpu-hours', 'GPU-hours', report.runs, (r) => r.overall.gpuHours, (v) => `${v.toFixed(1)}${oracle ? ` (×${(v / oracle).toFixed(2)} the oracle)` : ''}`)}
</body></html>
`;
}
