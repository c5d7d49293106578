import type { Document } from 'yaml';
import { err, ok, type Result } from '../result.js';

/**
 * Most alias expansions a YAML document may make. The yaml library's default (100) refuses ordinary files that
 * reuse one anchor a hundred times (`zone: &za zone-a` on every endpoint) by throwing; this bound still stops
 * exponential "billion laughs" documents, whose nested aliases multiply past it within a few levels.
 */
export const MAX_YAML_ALIASES = 1_000_000;

/**
 * A parsed YAML document as plain values, or why it cannot be one (never throws). Parse with `logLevel: 'error'`:
 * the library's warnings (odd tags, collection keys) would go to the process's stderr, once per bad edit, while
 * the validators report what is wrong with the document.
 */
export function yamlToJs(doc: Document): Result<unknown, string> {
  try {
    return ok(doc.toJS({ maxAliasCount: MAX_YAML_ALIASES }));
  } catch (e) {
    return err(`YAML: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
  }
}
