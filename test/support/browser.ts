import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ROOT } from './processes.js';

/** Where browser tests keep what they show (screenshots); not committed. */
export const ARTIFACTS = path.join(ROOT, '.artifacts');

/**
 * Launches Debian's headless Chromium (test/setup/chromium.mjs installs it; INFERPLANE_CHROMIUM names another)
 * with no network beyond what the page asks for: this machine's closed network refuses Chromium's background
 * connections, and they would only add noise.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.INFERPLANE_CHROMIUM ?? '/usr/bin/chromium',
    chromiumSandbox: false,
    args: ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Every console error and uncaught exception of `page`, as text, collected from now on. */
export function collectErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`page: ${e.message}`));
  return errors;
}

/** Saves a screenshot of `page` as .artifacts/NAME.png and returns its path. */
export async function keepScreenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
