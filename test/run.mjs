#!/usr/bin/env node
// `npm test`: sets up what the tests need, type-checks, and runs mocha.
// - With no arguments, the whole suite: every setup (Envoy, Chromium, h2spec), then mocha with .mocharc.json.
// - With arguments, a subset: `npm test -- test/xds test/grpc/http2.test.ts 'test/e2e/envoy-*.test.ts' -g NACK`.
//   Directories mean every *.test.ts below them, `*` matches within a path segment and `**` across them; options
//   (`-g`, `--bail`, …) go to mocha. Only the setups a selected test reaches through its imports are run.
// - A name that matches no test file is refused, exit 2.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
/** Mocha options that take a value as the next argument. */
const VALUED = new Set(['-g', '--grep', '-f', '--fgrep', '-t', '--timeout', '-R', '--reporter', '--retries', '-s', '--slow', '-j', '--jobs']);
const options = [];
const selectors = [];
for (let i = 0; i < args.length; i++) {
  if (!args[i].startsWith('-')) selectors.push(args[i]);
  else if (VALUED.has(args[i]) && i + 1 < args.length) options.push(args[i], args[++i]);
  else options.push(args[i]);
}

function run(command, commandArgs) {
  const r = spawnSync(command, commandArgs, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

function walk(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? (e.name === 'node_modules' ? [] : walk(p)) : [p];
  });
}

const allTests = walk(path.join(root, 'test')).filter((f) => f.endsWith('.test.ts'));

function globToRegExp(glob) {
  const source = glob
    .split('**')
    .map((part) => part.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*'))
    .join('.*');
  return new RegExp(`^${source}$`);
}

function select(selector) {
  const abs = path.resolve(root, selector);
  if (selector.includes('*')) {
    const re = globToRegExp(abs);
    return allTests.filter((f) => re.test(f));
  }
  if (fs.existsSync(abs) && fs.statSync(abs).isDirectory()) return allTests.filter((f) => f.startsWith(abs + path.sep));
  if (fs.existsSync(abs)) return [abs];
  return [];
}

const files = selectors.length === 0 ? allTests : [...new Set(selectors.flatMap(select))];
for (const s of selectors) {
  if (select(s).length === 0) {
    process.stderr.write(`npm test: ${s} names no test file (a *.test.ts file, a directory or a glob under test/)\n`);
    process.exit(2);
  }
}

/** Every file a test reaches through relative imports, itself included. */
function reach(file, seen = new Set()) {
  if (seen.has(file) || !fs.existsSync(file)) return seen;
  seen.add(file);
  const text = fs.readFileSync(file, 'utf8');
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
    reach(path.resolve(path.dirname(file), m[1].replace(/\.js$/, '.ts')), seen);
  }
  return seen;
}

const reached = new Set(files.flatMap((f) => [...reach(f)]));
const texts = [...reached].map((f) => fs.readFileSync(f, 'utf8'));
const needs = {
  envoy: selectors.length === 0 || reached.has(path.join(root, 'test/support/envoy.ts')),
  chromium: selectors.length === 0 || reached.has(path.join(root, 'test/support/browser.ts')),
  h2spec: selectors.length === 0 || texts.some((t) => t.includes(".tools/h2spec")),
};
// INFERPLANE_TEST_PLAN=1 prints what would run, and runs nothing (test/run.test.ts checks the selection).
if (process.env.INFERPLANE_TEST_PLAN === '1') {
  process.stdout.write(`${JSON.stringify({ setups: Object.keys(needs).filter((k) => needs[k]), files: files.map((f) => path.relative(root, f)).sort() })}\n`);
  process.exit(0);
}
if (needs.envoy) run(process.execPath, ['test/setup/envoy.mjs']);
if (needs.chromium) run(process.execPath, ['test/setup/chromium.mjs']);
if (needs.h2spec) run(process.execPath, ['test/setup/h2spec.mjs']);
run(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '--noEmit']);
const mocha = path.join(root, 'node_modules/mocha/bin/mocha.js');
// With files named, the config's spec list (the whole suite) is left out: mocha would add it to theirs.
if (selectors.length === 0) run(process.execPath, [mocha, ...options]);
else run(process.execPath, [mocha, '--no-config', '--import=tsx', '--timeout', '20000', '--reporter', 'spec', ...options, ...files]);
