import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { Browser, Page } from 'playwright-core';
import { startAdminServer, type AdminServer } from '../../src/observability/admin.js';
import { createMemoryLogger } from '../../src/observability/log.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { serve, type Running } from '../../src/serve.js';
import { TypeUrl } from '../../src/xds/resources.js';
import type { NodeStatus } from '../../src/xds/server.js';
import { DEFAULT_LIMITS } from '../../src/xds/stream.js';
import { collectErrors, keepScreenshot, launchChromium } from '../support/browser.js';
import { fakeFleet } from '../support/envoy-stats.js';
import { ROOT } from '../support/processes.js';
import { RecordingXdsClient } from '../support/xds-client.js';

const ENDPOINTS = `
services:
  - name: llama-8b
    endpoints:
      - { address: 10.0.0.1, port: 8000, zone: us-east-1a }
      - { address: 10.0.0.2, port: 8000, zone: us-east-1b }
`;

describe('status page in headless Chromium (Debian chromium driven by playwright-core)', function () {
  this.timeout(60_000);
  let browser: Browser;
  before(async () => {
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
  });

  describe('against a running serve (endpoints file, dry-run scaler)', () => {
    let dir: string;
    let running: Running;
    let page: Page;
    let errors: string[];
    const clients: RecordingXdsClient[] = [];
    before(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'status-page-'));
      fs.writeFileSync(path.join(dir, 'endpoints.yaml'), ENDPOINTS);
      fs.copyFileSync(path.join(ROOT, 'examples/compose-scaling-policy.yaml'), path.join(dir, 'policy.yaml'));
      fs.writeFileSync(path.join(dir, 'candidate.yaml'), 'services:\n  llama-8b: { deployment: llama-8b, minReplicas: 2 }\n');
      running = await serve({
        discovery: { kind: 'file', path: path.join(dir, 'endpoints.yaml') }, xdsAddress: '127.0.0.1:0', adminHost: '127.0.0.1', adminPort: 0,
        limits: DEFAULT_LIMITS, maxMessageBytes: 1 << 20, log: createMemoryLogger(),
        scaler: { policy: { kind: 'file', path: path.join(dir, 'policy.yaml') }, shadowPolicy: { kind: 'file', path: path.join(dir, 'candidate.yaml') }, dryRun: true, intervalMs: 50 },
      });
      page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      errors = collectErrors(page);
      await page.goto(`http://127.0.0.1:${running.admin.port}/?refresh=300`);
    });
    after(async () => {
      for (const c of clients) c.close();
      await page?.close();
      await running?.stop(500);
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('loads offline with no console errors and shows every section, the scaler with a replicas chart', async () => {
      await page.locator('#ready.ok').waitFor({ timeout: 5_000 });
      await page.locator('#nodes-body', { hasText: 'No node is connected.' }).waitFor({ timeout: 5_000 });
      await page.locator('#services-body tr[data-service="llama-8b"]').waitFor({ timeout: 5_000 });
      const desired = page.locator('#scaler-body .card svg.chart path[data-series="desired"]').first();
      await desired.waitFor({ state: 'attached', timeout: 10_000 });
      expect(await desired.getAttribute('d'), 'a line through the decisions').to.match(/^M[\d.]+ [\d.]+ L/);
      expect(await page.locator('#scaler-body').innerText()).to.contain('dry run').and.contain('Shadow policy file:');
      await page.locator('#scaler-body .card .shadow', { hasText: 'shadow policy (not applied)' }).waitFor({ timeout: 5_000 });
      expect(await page.locator('#fleet-tiles .tile').count()).to.equal(6);
      // The chart has the demand's line beside the replicas, and a time axis below, in the page's one clock.
      // (The demand comes from Envoy's stats: one Envoy's stream on the real MetricsService, for a moment.)
      const fleet = fakeFleet({ size: 1, cluster: 'llama-8b/http', everyMs: 200 });
      fleet.connect(`127.0.0.1:${running.xdsPort}`);
      fleet.setLoad(12); // 3 pods at the policy's target of 5 where 2 serve: a scale-up (a dry run only records it), below surge
      try {
        await page.locator('#scaler-body .card svg.chart path[data-series="wanted"]').first().waitFor({ state: 'attached', timeout: 10_000 });
        await page.locator('#scaler-body .card .legend', { hasText: /desired \d+.*ready \d+.*needed by demand \d+ \(\d+ in flight\)/s }).first().waitFor({ timeout: 10_000 });
        await page.locator('#decisions tr.dry').first().waitFor({ timeout: 10_000 });
      } finally {
        fleet.close();
      }
      const ticks = await page.locator('#scaler-body .card').first().locator('svg.chart text[data-tick="time"]').allTextContents();
      expect(ticks).to.have.length(3);
      for (const t of ticks) expect(t).to.match(/^\d\d:\d\d:\d\d$/);
      expect(await page.locator('#scaler-body .card .legend').first().innerText()).to.contain('needed by demand');
      // Dry-run decisions are told apart from pending ones; every clock on the page reads alike.
      expect(await page.locator('#decisions tr.warn').count(), 'no dry-run row in the pending colour').to.equal(0);
      expect(await page.locator('#decisions tbody tr td').first().innerText()).to.match(/^\d\d:\d\d:\d\d/);
      expect(await page.locator('#updated').innerText()).to.match(/^updated \d\d:\d\d:\d\d · /);
      expect(errors).to.deep.equal([]);
    });

    it('shows a node connecting, with its sync per type, within seconds', async () => {
      const c = new RecordingXdsClient(`127.0.0.1:${running.xdsPort}`, 'sotw');
      clients.push(c);
      c.send({ node: { id: 'envoy-on-the-page', cluster: 'edge' }, type_url: TypeUrl.Cluster });
      const r = await c.next((x) => x.typeUrl === TypeUrl.Cluster);
      c.send({ type_url: TypeUrl.Cluster, version_info: r.versionInfo, response_nonce: r.nonce });
      const row = page.locator('#nodes-body tr[data-node="envoy-on-the-page"]');
      await row.waitFor({ timeout: 3_000 });
      await row.locator('td.s-synced').waitFor({ timeout: 3_000 });
      expect(await row.innerText()).to.contain('edge').and.contain('ads/sotw').and.contain('SYNCED');
      const l = new RecordingXdsClient(`127.0.0.1:${running.xdsPort}`, 'sotw');
      clients.push(l);
      l.send({ node: { id: 'envoy-nacking', cluster: 'edge' }, type_url: TypeUrl.Listener });
      const lr = await l.next((x) => x.typeUrl === TypeUrl.Listener);
      l.send({ type_url: TypeUrl.Listener, response_nonce: lr.nonce, error_detail: { code: 3, message: 'unknown filter <b>x</b>' } });
      const bad = page.locator('#nodes-body tbody tr').first();
      await page.locator('#nodes-body tr.bad[data-node="envoy-nacking"]').waitFor({ timeout: 3_000 });
      expect(await bad.getAttribute('data-node'), 'out-of-sync rows first').to.equal('envoy-nacking');
      expect(await bad.innerText(), 'the NACK message, as text').to.contain('lds: unknown filter <b>x</b>');
      expect(errors).to.deep.equal([]);
    });

    it('shows an endpoint change (a new endpoint, one draining) within seconds, by zone and state', async () => {
      const row = page.locator('#services-body tr[data-service="llama-8b"]');
      expect(await row.locator('td.healthy').innerText()).to.equal('2');
      fs.writeFileSync(path.join(dir, 'endpoints.yaml'), `${ENDPOINTS}      - { address: 10.0.0.3, port: 8000, zone: us-east-1b }\n      - { address: 10.0.0.4, port: 8000, zone: us-east-1a, terminating: true, serving: true }\n`);
      await page.locator('#services-body tr[data-service="llama-8b"] td.healthy', { hasText: '3' }).waitFor({ timeout: 5_000 });
      const text = await row.innerText();
      expect(text).to.contain('us-east-1a: 1 · 1 draining').and.contain('us-east-1b: 2');
      const shot = await keepScreenshot(page, 'status-page');
      expect(fs.statSync(shot).size).to.be.greaterThan(10_000);
      expect(errors).to.deep.equal([]);
    });

    it('shows a forced mode on the service\'s card with its reason, and its lifting', async () => {
      const force = (mode: string) => fetch(`http://127.0.0.1:${running.admin.port}/scaler/mode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ service: 'llama-8b', mode, for: '10m' }) });
      expect((await force('emergency')).status).to.equal(200);
      const card = page.locator('#scaler-body .card[data-service="llama-8b"]');
      await card.locator('b.mode-emergency').waitFor({ timeout: 5_000 });
      expect(await card.innerText()).to.match(/mode emergency \(operator, .*until /);
      expect((await force('auto')).status).to.equal(200);
      await card.locator('b.mode-emergency').waitFor({ state: 'detached', timeout: 5_000 });
      expect(errors).to.deep.equal([]);
    });

    it('says what was refused (an endpoints file, a scaling policy) while the last good configuration keeps serving', async () => {
      fs.writeFileSync(path.join(dir, 'endpoints.yaml'), 'services:\n  - name: llama-8b\n    endpoints:\n      - { address: 10.0.0.999, port: 8000 }\n');
      fs.writeFileSync(path.join(dir, 'policy.yaml'), 'services:\n  llama-8b:\n    deployment: default/llama-8b\n    targetPerPod: -1\n');
      await page.locator('#refused', { hasText: 'endpoints file:' }).waitFor({ timeout: 5_000 });
      expect(await page.locator('#refused').innerText()).to.contain('10.0.0.999');
      await page.locator('#policy-rejected').waitFor({ timeout: 5_000 });
      expect(await page.locator('#policy-rejected').innerText()).to.contain('the previous one stays in force').and.contain('targetPerPod');
      expect(await page.locator('#ready').innerText(), 'the last good configuration serves').to.equal('ready');
      expect(await page.locator('#services-body tr[data-service="llama-8b"] td.healthy').innerText()).to.equal('3');
      await keepScreenshot(page, 'status-page-refused');
      expect(errors).to.deep.equal([]);
    });
  });

  describe('a long NACK, and a server that goes away (a stand-in for the xDS server\'s node list; the admin server and page are real)', () => {
    let admin: AdminServer;
    let page: Page;
    // 4 KiB, most of it one word: the width a real validation message can take (the server clips what it keeps).
    const message = `Proto constraint validation failed (ClusterLoadAssignmentValidationError.Endpoints[0]: ${'x'.repeat(4000)})`;
    const nodes: NodeStatus[] = [{
      stream: 1, nodeId: 'envoy-nacking', cluster: 'zone-a', userAgent: 'envoy', group: 'default', service: 'ads', variant: 'sotw', connectedSince: new Date().toISOString(),
      types: { eds: { subscribed: ['llama-8b'], subscribedCount: 1, sentVersion: 'v2', ackedVersion: 'v1', lastNack: { version: 'v2', nonce: '2', code: 3, message, at: new Date().toISOString() } } },
    }];
    before(async () => {
      admin = await startAdminServer('127.0.0.1', 0, { xds: { nodes: () => nodes }, cache: { groups: () => [] } as never, metrics: createMetrics(), ready: () => true, fleet: () => ({ services: {}, reporters: [] }) });
      page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
      await page.goto(`http://127.0.0.1:${admin.port}/?refresh=250`);
    });
    after(async () => {
      await page?.close();
      await admin?.close();
    });

    it('wraps a 4 KiB NACK inside its cell at 1440 and 1024 px: the page never grows wider than the window', async () => {
      for (const w of [1440, 1024]) {
        await page.setViewportSize({ width: w, height: 900 });
        await page.locator('#nodes-body tr[data-node="envoy-nacking"]', { hasText: 'ClusterLoadAssignmentValidationError' }).waitFor({ timeout: 5_000 });
        const width = (await page.evaluate('({ page: document.documentElement.scrollWidth, window: window.innerWidth, header: document.querySelector("header").getBoundingClientRect().width })')) as { page: number; window: number; header: number };
        expect(width.page, `at ${w} px`).to.be.at.most(width.window);
        expect(width.header, `at ${w} px`).to.be.at.most(width.window);
      }
    });

    it('turns the badge from "ready" to "unreachable" when the server is gone, and back when it answers again', async () => {
      await page.locator('#ready.ok').waitFor({ timeout: 5_000 });
      const port = admin.port;
      await admin.close();
      await page.locator('#ready.gone', { hasText: 'unreachable' }).waitFor({ timeout: 5_000 });
      expect(await page.locator('#unreachable').isVisible()).to.equal(true);
      admin = await startAdminServer('127.0.0.1', port, { xds: { nodes: () => nodes }, cache: { groups: () => [] } as never, metrics: createMetrics(), ready: () => true, fleet: () => ({ services: {}, reporters: [] }) });
      await page.locator('#ready.ok', { hasText: 'ready' }).waitFor({ timeout: 5_000 });
    });
  });

  describe('with 10,000 connected nodes (a stand-in for the xDS server\'s node list; the admin server and page are real)', () => {
    let admin: AdminServer;
    let page: Page;
    let errors: string[];
    const nodes: NodeStatus[] = Array.from({ length: 10_000 }, (_, i) => {
      const acked = { subscribed: [], subscribedCount: 1, sentVersion: 'v2', ackedVersion: 'v2' };
      const lagging = i % 1000 === 7;
      return {
        stream: i, nodeId: i === 42 ? '<img src=x onerror="window.pwned=1">' : `envoy-${String(i).padStart(5, '0')}`, cluster: `zone-${i % 3}`, userAgent: 'envoy', group: 'default', service: 'ads', variant: 'delta',
        connectedSince: new Date(Date.now() - 60_000).toISOString(),
        types: { cds: acked, lds: acked, eds: lagging ? { ...acked, sentVersion: 'v3', pendingNonce: '9' } : acked, rds: acked },
      };
    });
    before(async () => {
      admin = await startAdminServer('127.0.0.1', 0, { xds: { nodes: () => nodes }, cache: { groups: () => [] } as never, metrics: createMetrics(), ready: () => true, fleet: () => ({ services: {}, reporters: [] }) });
      page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      errors = collectErrors(page);
    });
    after(async () => {
      await page?.close();
      await admin?.close();
    });

    it('shows one page of 100 rows, out-of-sync first, pages and filters on the server, and escapes node ids', async () => {
      const one = await fetch(`http://127.0.0.1:${admin.port}/status/nodes?limit=100&offset=0`);
      expect((await one.text()).length, 'one page stays small').to.be.lessThan(200_000);
      await page.goto(`http://127.0.0.1:${admin.port}/?refresh=500`);
      await page.locator('#nodes-body', { hasText: '10000 streams, 10 out of sync' }).waitFor({ timeout: 5_000 });
      expect(await page.locator('#nodes-body tbody tr').count()).to.equal(100);
      expect(await page.locator('#nodes-body tbody tr.warn').count(), 'the 10 pending streams lead').to.equal(10);
      expect(await page.locator('#nodes-body tbody tr').first().getAttribute('data-node')).to.equal('envoy-00007');
      await page.locator('#nodes-pager button', { hasText: 'next' }).click();
      await page.locator('#nodes-pager', { hasText: '101–200 of 10000' }).waitFor({ timeout: 3_000 });
      await page.fill('#nodes-q', 'envoy-0999');
      await page.locator('#nodes-body', { hasText: '10 shown by the filter' }).waitFor({ timeout: 3_000 });
      expect(await page.locator('#nodes-body tbody tr').count()).to.equal(10);
      await page.fill('#nodes-q', 'onerror');
      await page.locator('#nodes-body tbody tr').first().waitFor({ timeout: 3_000 });
      await page.locator('#nodes-body', { hasText: '1 shown by the filter' }).waitFor({ timeout: 3_000 });
      expect(await page.locator('#nodes-body tbody td').first().innerText()).to.equal('<img src=x onerror="window.pwned=1">');
      expect(await page.evaluate(() => (globalThis as { pwned?: number }).pwned)).to.equal(undefined);
      expect(await page.locator('#scaler-body').innerText()).to.contain('not running in this process');
      expect(errors).to.deep.equal([]);
    });
  });
});
