import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { collectErrors, keepScreenshot, launchChromium } from '../support/browser.js';
import { inferplane } from '../support/processes.js';

const SCENARIO = `
duration: 30m
traffic:
  pattern: { peakRps: 30000, troughRatio: 1, bursts: [{ at: 5m, factor: 2, rise: 60s, hold: 5m }] }
fleet:
  noisyNeighbours: { oneIn: 8, factor: 2, period: 5m, busy: 1m }
balancers: { count: 20 }
runs:
  - { name: inferplane, scaling: { policy: default } }
  - { name: kpa-like, scaling: kpa }
  - { name: hpa-like, scaling: hpa }
  - { name: fixed, scaling: { fixed: peak } }
  - { name: oracle, scaling: oracle }
`;

describe('inferplane simulate (the command)', function () {
  this.timeout(60_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'simulate-cli-'));
  const scenario = path.join(dir, 'burst.yaml');
  fs.writeFileSync(scenario, SCENARIO);
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('refuses absurd flags with a message naming the flag, exit 2, and a bad scenario with file:line, exit 1, simulating nothing', async () => {
    const cases = [
      [['--replicas', '0'], 'inferplane: --replicas must be a whole number of at least 1, got "0"'],
      [['--peak-rps=-5'], 'inferplane: --peak-rps must be a rate above zero, got "-5"'],
      [['--duration', '0s'], 'inferplane: --duration must be a duration above zero such as 30m or 24h, got "0s"'],
      [['--mode', 'fast'], 'inferplane: --mode must be aggregate or exact, got "fast"'],
      [['--slo', '0s'], 'inferplane: --slo must be a duration above zero such as 1s or 500ms, got "0s"'],
      [['--engine', 'gpt-5-on-a-toaster'], 'inferplane: --engine: no preset "gpt-5-on-a-toaster"; the presets are llama-3.1-8b-h100-bf16, llama-3.1-8b-h100-fp8, llama-3.1-70b-4xh100-bf16, llama-3.1-70b-4xh100-fp8, llama-3.2-3b-h100-fp8, llama-3.2-1b-h100-bf16, llama-3.1-8b-a100-40gb-bf16'],
      [['--balancers', '1.5'], 'inferplane: --balancers must be a whole number of at least 1, got "1.5"'],
      [['--replicas', '3'], 'inferplane: --replicas: the scenario has no fixed-fleet run'],
      [['--html', '/no/such/dir/x.html'], 'inferplane: --html /no/such/dir/x.html: cannot write into /no/such/dir (ENOENT); name a file in a directory that exists'],
    ] as const;
    const withFixedRemoved = path.join(dir, 'no-fixed.yaml');
    fs.writeFileSync(withFixedRemoved, SCENARIO.replace(/ {2}- { name: fixed.*\n/, ''));
    await Promise.all(cases.map(async ([flags, message], i) => {
      const p = inferplane(['simulate', flags[0] === '--replicas' && flags[1] === '3' ? withFixedRemoved : scenario, ...flags]);
      expect(await p.exited, flags.join(' ')).to.equal(2);
      expect(p.err().split('\n')[0]).to.equal(message);
      expect(p.out(), `${flags.join(' ')}: nothing simulated`).to.equal('');
    }));
    const none = inferplane(['simulate']);
    expect(await none.exited).to.equal(2);
    expect(none.err()).to.contain('a scenario file is required');
    const bad = path.join(dir, 'bad.yaml');
    fs.writeFileSync(bad, 'duration: 1h\ntraffic: { constant: { rps: 100 } }\nruns:\n  - { name: a, scaling: { fixed: -1 } }\n');
    const p = inferplane(['simulate', bad]);
    expect(await p.exited).to.equal(1);
    expect(p.err()).to.contain('the scenario is refused; nothing was simulated').and.contain(`${bad}:4:`).and.contain('runs[0].scaling');
    expect(p.out()).to.equal('');
    const policy = inferplane(['simulate', scenario, '--policy', path.join(dir, 'no-such-policy.yaml')]);
    expect(await policy.exited).to.equal(1);
    expect(policy.err()).to.contain('--policy is refused; nothing was simulated').and.contain('no-such-policy.yaml');
    expect(policy.out()).to.equal('');
  });

  it('prints each run side by side and per minute, writes JSON for machines and an HTML report that renders in Chromium with data in every chart', async () => {
    const html = path.join(dir, 'report.html');
    const p = inferplane(['simulate', scenario, '--html', html]);
    expect(await p.exited, p.err()).to.equal(0);
    const out = p.out();
    expect(out).to.match(/^run\s+balancer\s+requests\s+p50 ms\s+p99 ms\s+p99\.9 ms\s+over SLO\s+SLO minutes\s+GPU-hours\s+×oracle\s+scale events\s+peak pods$/m);
    for (const name of ['inferplane', 'kpa-like', 'hpa-like', 'fixed', 'oracle']) expect(out).to.match(new RegExp(`^${name}\\s+least-request\\s+\\d+`, 'm'));
    expect(out).to.match(/^oracle\s.*×1\.00/m);
    expect(out).to.match(/^inferplane, per minute:\nminute\s+requests/m);
    expect(out).to.match(/\d[\d,]* simulated requests\/s/);

    const json = inferplane(['simulate', scenario, '--json', '-', '--duration', '10m']);
    expect(await json.exited).to.equal(0);
    const report = JSON.parse(json.out());
    expect(report.runs.map((r: { name: string }) => r.name)).to.deep.equal(['inferplane', 'kpa-like', 'hpa-like', 'fixed', 'oracle']);
    expect(report.runs[0].minutes).to.have.length(10);
    expect(report.runs[0].minutes[0]).to.have.keys(['minute', 'requests', 'p50Ms', 'p99Ms', 'p999Ms', 'overSlo', 'failed', 'desired', 'ready', 'pods', 'gpuHours', 'scaleEvents']);
    expect(report.scenario).to.include({ durationS: 600, mode: 'aggregate' });

    const text = fs.readFileSync(html, 'utf8');
    expect(text.match(/(src|href)="(?!data:)[^"]*"/g), 'nothing loaded from anywhere').to.equal(null);
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
      const errors = collectErrors(page);
      await page.goto(pathToFileURL(html).href);
      expect(await page.locator('#summary tbody tr').count()).to.equal(5);
      for (const chart of ['p99', 'replicas']) {
        const paths = page.locator(`#${chart} path.series`);
        expect(await paths.count(), chart).to.equal(5);
        for (let i = 0; i < 5; i++) expect((await paths.nth(i).getAttribute('d'))!.split('L').length, `${chart} series ${i}: a point per minute`).to.equal(30);
      }
      for (const bars of ['slo-minutes', 'gpu-hours']) {
        const widths = await page.locator(`#${bars} rect.bar`).evaluateAll((rs) => rs.map((r) => Number(r.getAttribute('width'))));
        expect(widths, bars).to.have.length(5);
        expect(widths.every((w) => w > 0), bars).to.equal(true);
      }
      // It opens with a written verdict that names the runs it compares.
      const verdictText = await page.locator('#verdict').innerText();
      expect(verdictText).to.match(/Most minutes within the SLO: /);
      expect(verdictText).to.match(/inferplane against kpa-like: .* GPU-hours \((better|worse) or equal on both|a trade\)/);
      // Lines stay apart where they overlap: each series has its own dash pattern (or none) and markers.
      const dashes = await page.locator('#replicas path.series').evaluateAll((ps) => ps.map((p) => p.getAttribute('stroke-dasharray') ?? 'solid'));
      expect(new Set(dashes).size, 'a dash pattern per series').to.equal(5);
      expect(await page.locator('#replicas g.markers').count()).to.equal(5);
      // Even ticks: a round step from zero, with units on the time axis.
      const yTicks = (await page.locator('#replicas text.tick').allTextContents()).filter((t) => /^\d+$/.test(t)).map(Number);
      const steps = yTicks.slice(1).map((v, i) => v - yTicks[i]!);
      expect(yTicks[0]).to.equal(0);
      expect(new Set(steps).size, `ticks ${yTicks.join(', ')}`).to.equal(1);
      expect([1, 2, 5].some((m) => Math.log10(steps[0]! / m) % 1 === 0), `step ${steps[0]}`).to.equal(true);
      expect(await page.locator('#replicas text.tick').allTextContents()).to.include.members(['0 min', '10 min', '20 min']);
      await keepScreenshot(page, 'simulate-report');
      expect(errors).to.deep.equal([]);
    } finally {
      await browser.close();
    }
  });
});
