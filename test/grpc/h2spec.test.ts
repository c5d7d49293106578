import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { createMemoryLogger } from '../../src/observability/log.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { createTlsSource, type TlsSource } from '../../src/xds/tls.js';
import { createTestPki, type TestPki } from '../support/certs.js';
import { startHarness, type Harness } from '../support/harness.js';
import { ROOT } from '../support/processes.js';

/**
 * h2spec (github.com/summerwind/h2spec v2.2.1, built by test/setup/h2spec.mjs) is the HTTP/2 conformance suite
 * servers are judged by: every case, the strict ones included, must pass against the xDS port, plaintext and
 * TLS, with none skipped. Its requests are plain GETs: the port answers them, once each request has ended, with
 * 405 and a short body, so the cases that need an open stream (flow control, frames on half-closed streams,
 * trailers) run on a live stream.
 */
const H2SPEC = path.join(ROOT, '.tools/h2spec');

interface Summary {
  readonly tests: number;
  readonly passed: number;
  readonly skipped: number;
  readonly failed: number;
  readonly output: string;
}

function h2spec(args: readonly string[]): Promise<Summary> {
  if (!fs.existsSync(H2SPEC)) throw new Error(`h2spec is missing at ${H2SPEC} (npm test builds it: node test/setup/h2spec.mjs)`);
  return new Promise((resolve, reject) => {
    execFile(H2SPEC, ['--strict', '--timeout', '2', ...args], { maxBuffer: 16 * 1024 * 1024 }, (error, stdout) => {
      const m = /(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed/.exec(stdout);
      if (!m) return reject(new Error(`h2spec printed no summary (${error?.message ?? 'no error'}):\n${stdout}`));
      resolve({ tests: Number(m[1]), passed: Number(m[2]), skipped: Number(m[3]), failed: Number(m[4]), output: stdout });
    });
  });
}

function expectAllPassed(s: Summary): void {
  const failures = s.output.slice(s.output.indexOf('Failures:') >= 0 ? s.output.indexOf('Failures:') : s.output.length);
  expect({ failed: s.failed, skipped: s.skipped }, failures).to.deep.equal({ failed: 0, skipped: 0 });
  // h2spec 2.2.1 has 146 cases with --strict; fewer would mean some did not run.
  expect(s.passed).to.equal(146);
}

describe('h2spec, the HTTP/2 conformance suite, against the xDS port', function () {
  this.timeout(60_000);
  let harness: Harness | undefined;
  let pki: TestPki | undefined;
  let tls: TlsSource | undefined;
  afterEach(async () => {
    await harness?.stop();
    tls?.close();
    pki?.remove();
    harness = tls = pki = undefined;
  });

  it('passes every case in plaintext', async () => {
    harness = await startHarness();
    expectAllPassed(await h2spec(['-h', '127.0.0.1', '-p', harness.address.split(':')[1]!]));
  });

  it('passes every case over TLS (ALPN h2)', async () => {
    pki = createTestPki();
    const leaf = pki.issue('server', { sans: ['DNS:localhost', 'IP:127.0.0.1'] });
    tls = createTlsSource({ certFile: leaf.cert, keyFile: leaf.key }, { log: createMemoryLogger(), metrics: createMetrics(), pollMs: 60_000 });
    harness = await startHarness(undefined, { tls: tls.server });
    expectAllPassed(await h2spec(['-t', '-k', '-h', '127.0.0.1', '-p', harness.address.split(':')[1]!]));
  });
});
