#!/usr/bin/env node
/**
 * The `inferplane` command (package.json "bin"; `npx inferplane …` from a clone, after `npm ci`). In a clone it
 * runs the TypeScript source through tsx, so it is never older than the code beside it; where there is no source
 * or no tsx (an installed package, the image) it runs the production build in dist/.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const source = path.join(root, 'src/main.ts');
let register;
try {
  if (fs.existsSync(source)) ({ register } = await import('tsx/esm/api'));
} catch {
  // No tsx (dev dependencies pruned): the build it is.
}
if (register) {
  register();
  await import(pathToFileURL(source).href);
} else {
  const built = path.join(root, 'dist/src/main.js');
  if (!fs.existsSync(built)) {
    process.stderr.write(`inferplane: neither the source with tsx nor a build (${built}) is here; run npm ci, or npm run build\n`);
    process.exit(1);
  }
  await import(pathToFileURL(built).href);
}
