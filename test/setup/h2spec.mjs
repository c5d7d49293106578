#!/usr/bin/env node
// Builds h2spec, the HTTP/2 conformance suite, from the Go module pinned in test/setup/h2spec/ (go.mod, go.sum)
// into a cache outside the clone keyed by those files' hash, and links it as .tools/h2spec. Part of `npm test`:
// a machine builds it once (about 20 s with an empty Go cache). A missing Go or a failed build exits non-zero
// with Go's own words: the conformance test is never skipped.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const moduleDir = path.join(root, 'test/setup/h2spec');
const hash = createHash('sha256');
for (const f of ['go.mod', 'go.sum', 'tools.go']) hash.update(fs.readFileSync(path.join(moduleDir, f)));
const key = hash.digest('hex').slice(0, 16);
const cacheRoot = process.env.INFERPLANE_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'inferplane');
const binary = path.join(cacheRoot, `h2spec-${key}`, 'h2spec');
const link = path.join(root, '.tools', 'h2spec');

function runs(file) {
  try {
    execFileSync(file, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

if (!runs(binary)) {
  const go = process.env.GO ?? 'go';
  try {
    execFileSync(go, ['version'], { stdio: 'ignore' });
  } catch {
    process.stderr.write(`h2spec is built with Go, and "${go}" does not run: install Go (1.22 or later) or set GO to its binary\n`);
    process.exit(1);
  }
  process.stderr.write(`building h2spec (pinned in test/setup/h2spec/go.mod) into ${path.dirname(binary)}\n`);
  fs.mkdirSync(path.dirname(binary), { recursive: true });
  const tmp = `${binary}.${process.pid}`;
  execFileSync(go, ['build', '-mod=readonly', '-o', tmp, 'github.com/summerwind/h2spec/cmd/h2spec'], { cwd: moduleDir, stdio: 'inherit', env: { ...process.env, CGO_ENABLED: '0' } });
  fs.renameSync(tmp, binary);
}
fs.mkdirSync(path.dirname(link), { recursive: true });
let current;
try {
  current = fs.readlinkSync(link);
} catch {
  current = undefined;
}
if (current !== binary) {
  fs.rmSync(link, { force: true });
  fs.symlinkSync(binary, link);
}
