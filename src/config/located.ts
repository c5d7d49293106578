import { isNode, LineCounter, parseDocument, type Document } from 'yaml';
import { formatPath, type Problem } from '../model/validate.js';
import { err, ok, type Result } from '../result.js';
import { yamlToJs } from './yaml.js';

/** A YAML (or JSON) text parsed with positions kept, so that problems can say where they are. */
export interface LocatedDocument {
  readonly value: unknown;
  /** `file:line:column: path: message` for a problem found in the value. */
  describe(problem: Problem): string;
}

/**
 * Parses `text` (from `file`, for messages) keeping line positions. Syntax errors come back as
 * `file:line:column: reason`; an empty or comments-only text as `file:1:1: the file is empty`.
 */
export function parseLocated(text: string, file: string): Result<LocatedDocument, string[]> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false, logLevel: 'error' });
  if (doc.errors.length > 0) {
    return err(doc.errors.map((e) => {
      const pos = lines.linePos(e.pos[0]);
      return `${file}:${pos.line}:${pos.col}: ${e.message.split('\n')[0]}`;
    }));
  }
  if (doc.contents === null) return err([`${file}:1:1: the file is empty`]);
  const plain = yamlToJs(doc);
  if (!plain.ok) return err([`${file}:1:1: ${plain.error}`]);
  return ok({ value: plain.value, describe: (p) => `${file}:${locate(doc, lines, p.path)}: ${formatPath(p.path)}: ${p.message}` });
}

/** Line and column of the deepest node on `path` that exists in the document. */
function locate(doc: Document, lines: LineCounter, p: Problem['path']): string {
  for (let n = p.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(p.slice(0, n), true);
    if (isNode(node) && node.range) {
      const pos = lines.linePos(node.range[0]);
      return `${pos.line}:${pos.col}`;
    }
  }
  return '1:1';
}
