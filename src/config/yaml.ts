import { CORE_SCHEMA, load } from 'js-yaml';
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

/**
 * Directives (`%YAML 1.1` changes what `yes` means) and explicit tags (`!!float 1`): the two things the fast
 * reader below resolves differently from the full parser. The test is coarse on purpose: a `!` anywhere, in a
 * comment or a quoted string too, only means the file is read the slow way.
 */
const NEEDS_FULL_PARSER = /^%|!/m;

/**
 * The plain value of a one-document YAML (or JSON) text, read by js-yaml: about ten times faster than the
 * `yaml` library (1.3 s against 13–16 s for a 10 MiB endpoints file of 5,000 services), but without the
 * positions that error messages need. Undefined whenever it cannot answer exactly as the full parser would:
 * a syntax error, an empty text, aliases (the full parser bounds their expansion), directives or explicit
 * tags. Both read the YAML 1.2 core schema; callers that find the value invalid parse again with positions
 * (the full parser's reading is then the one that counts).
 */
export function fastYamlValue(text: string): unknown {
  if (NEEDS_FULL_PARSER.test(text)) return undefined;
  try {
    return load(text, { schema: CORE_SCHEMA, maxAliases: 0 }) ?? undefined;
  } catch {
    return undefined;
  }
}
