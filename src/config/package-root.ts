import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The directory holding inferplane's package.json, found by walking up from this module, so that files
 * shipped with the package (examples/, proto/) are found both from src/ (tsx) and from dist/src/ (built).
 */
export const PACKAGE_ROOT: string = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === 'inferplane') return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the inferplane package root');
    dir = up;
  }
})();
