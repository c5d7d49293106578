#!/usr/bin/env node
// Makes sure Debian's Chromium is there for the browser tests (the status page), installing the `chromium`
// package with apt when it is missing. Part of `npm test`. INFERPLANE_CHROMIUM names another binary.
// Any failure exits non-zero with apt's own words: the browser tests are never skipped.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

const binary = process.env.INFERPLANE_CHROMIUM ?? '/usr/bin/chromium';

function version() {
  try {
    return execFileSync(binary, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

if (version()) process.exit(0);
if (process.env.INFERPLANE_CHROMIUM) {
  process.stderr.write(`INFERPLANE_CHROMIUM=${binary} does not run (${fs.existsSync(binary) ? 'not executable' : 'no such file'})\n`);
  process.exit(1);
}
if (process.getuid?.() !== 0) {
  process.stderr.write(`Chromium is missing at ${binary}, and installing Debian's package needs root: run "sudo apt-get install -y chromium", or set INFERPLANE_CHROMIUM to a Chromium binary\n`);
  process.exit(1);
}
process.stderr.write('installing Chromium (Debian package chromium) for the status page tests\n');
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
execFileSync('apt-get', ['install', '-y', '-qq', 'chromium'], { stdio: 'inherit', env });
const got = version();
if (!got) {
  process.stderr.write(`apt installed chromium, but ${binary} does not run\n`);
  process.exit(1);
}
process.stderr.write(`${got} ready: ${binary}\n`);
