/**
 * Vendors the Envoy, xds, validate and googleapis .proto files inferplane loads into proto/vendor/, copied from
 * the pinned @grpc/grpc-js-xds devDependency (its deps/ folder), so that the production package loads them
 * without any devDependency. Copies exactly the import closure of the roots below and removes anything else.
 *
 *   npx tsx scripts/sync-protos.ts          write proto/vendor/
 *   npx tsx scripts/sync-protos.ts --check  exit 1 if proto/vendor/ differs (a test runs this)
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { ENVOY_PROTO_FILES, VENDOR_DIR } from '../src/xds/protos.js';

/** Files loaded besides ENVOY_PROTO_FILES: by the MetricsService, the test clients, and the bootstrap checks. */
const MORE_ROOTS = [
  'envoy/service/metrics/v3/metrics_service.proto',
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/cluster/v3/cds.proto',
  'envoy/service/endpoint/v3/eds.proto',
  'envoy/service/listener/v3/lds.proto',
  'envoy/service/route/v3/rds.proto',
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/config/metrics/v3/metrics_service.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
];

const require = createRequire(import.meta.url);
const pkgDir = path.dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
const pkgVersion = (JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
const sources = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(pkgDir, 'deps', d));
const OWN = path.dirname(VENDOR_DIR);

/** The import closure of `roots`: relative path → file text. google/protobuf comes with protobufjs. */
function closure(roots: readonly string[]): Map<string, string> {
  const files = new Map<string, string>();
  const todo = [...roots];
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (files.has(file) || file.startsWith('google/protobuf/')) continue;
    if (fs.existsSync(path.join(OWN, file))) continue; // our own definitions (proto/io/prometheus/…)
    const dir = sources.find((d) => fs.existsSync(path.join(d, file)));
    if (!dir) throw new Error(`${file}: not found in @grpc/grpc-js-xds ${pkgVersion} deps/`);
    const text = fs.readFileSync(path.join(dir, file), 'utf8');
    files.set(file, text);
    for (const m of text.matchAll(/^import\s+(?:public\s+|weak\s+)?"([^"]+)";/gm)) todo.push(m[1]!);
  }
  return files;
}

function listTree(dir: string, base = dir): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? listTree(p, base) : [path.relative(base, p)];
  });
}

const wanted = closure([...ENVOY_PROTO_FILES, ...MORE_ROOTS]);
const manifest = `Copied by scripts/sync-protos.ts from @grpc/grpc-js-xds ${pkgVersion} (deps/: envoy-api, xds, googleapis, protoc-gen-validate).\nDo not edit; run the script. Licences: Apache-2.0, as in those projects.\n\n${[...wanted.keys()].sort().join('\n')}\n`;
wanted.set('MANIFEST', manifest);
const present = listTree(VENDOR_DIR);
const differ = [...wanted].filter(([f, text]) => !fs.existsSync(path.join(VENDOR_DIR, f)) || fs.readFileSync(path.join(VENDOR_DIR, f), 'utf8') !== text).map(([f]) => f);
const extra = present.filter((f) => !wanted.has(f));
if (process.argv.includes('--check')) {
  if (differ.length + extra.length === 0) process.exit(0);
  process.stderr.write(`proto/vendor is out of date (run npx tsx scripts/sync-protos.ts): ${[...differ.map((f) => `changed ${f}`), ...extra.map((f) => `extra ${f}`)].join(', ')}\n`);
  process.exit(1);
}
for (const f of extra) fs.rmSync(path.join(VENDOR_DIR, f));
for (const f of differ) {
  fs.mkdirSync(path.dirname(path.join(VENDOR_DIR, f)), { recursive: true });
  fs.writeFileSync(path.join(VENDOR_DIR, f), wanted.get(f)!);
}
process.stdout.write(`proto/vendor: ${wanted.size - 1} files from @grpc/grpc-js-xds ${pkgVersion} (${differ.length} written, ${extra.length} removed)\n`);
