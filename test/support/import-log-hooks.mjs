// Module hooks for import-log.mjs (they run on Node's hooks thread, hence the file rather than a message).
import fs from 'node:fs';

export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  if (process.env.IMPORT_LOG) fs.appendFileSync(process.env.IMPORT_LOG, `${resolved.url}\n`);
  return resolved;
}
