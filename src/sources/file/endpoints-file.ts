import fs from 'node:fs';
import path from 'node:path';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import type { Model } from '../../model/model.js';
import { formatPath, readModel, type Path } from '../../model/validate.js';
import { watchTextFile, type FileWatch, type WatchFileOptions } from '../../config/watch-file.js';
import { err, type Result } from '../../result.js';
import { yamlToJs } from '../../config/yaml.js';

/** Files larger than this are refused rather than parsed. */
export const MAX_FILE_BYTES = 32 * 1024 * 1024;

/**
 * Parses the text of an endpoints file (YAML or JSON, the shape documented in examples/endpoints.yaml) into a
 * model. Every problem comes back as `file:line:column: path: reason`.
 */
export function parseEndpointsFile(text: string, file: string): Result<Model, string[]> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false, logLevel: 'error' });
  if (doc.errors.length > 0) {
    return err(doc.errors.map((e) => {
      const pos = lines.linePos(e.pos[0]);
      return `${file}:${pos.line}:${pos.col}: ${e.message.split('\n')[0]}`;
    }));
  }
  // An empty or comments-only file is what a writer leaves between truncating and writing: never a new truth.
  if (doc.contents === null) return err([`${file}:1:1: the file is empty; refusing it (write "services: []" to serve nothing)`]);
  const plain = yamlToJs(doc);
  if (!plain.ok) return err([`${file}:1:1: ${plain.error}`]);
  if (typeof plain.value === 'object' && plain.value !== null && !Array.isArray(plain.value) && !('services' in plain.value)) {
    return err([`${file}:1:1: services: missing; refusing a file without it (write "services: []" to serve nothing)`]);
  }
  const model = readModel(plain.value);
  if (model.ok) return model;
  return err(model.error.map((p) => `${file}:${locate(doc, lines, p.path)}: ${formatPath(p.path)}: ${p.message}`));
}

/** Line and column of the deepest node on `path` that exists in the document. */
function locate(doc: Document, lines: LineCounter, p: Path): string {
  for (let n = p.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(p.slice(0, n), true);
    if (isNode(node) && node.range) {
      const pos = lines.linePos(node.range[0]);
      return `${pos.line}:${pos.col}`;
    }
  }
  return '1:1';
}

/** Reads and parses an endpoints file from disk. */
export function loadEndpointsFile(file: string): Result<Model, string[]> {
  let text: string;
  try {
    const size = fs.statSync(file).size;
    if (size > MAX_FILE_BYTES) return err([`${file}: ${size} bytes is over the ${MAX_FILE_BYTES}-byte limit`]);
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    return err([`${file}: cannot read: ${e instanceof Error ? e.message : String(e)}`]);
  }
  return parseEndpointsFile(text, file);
}

/** Options of {@link watchEndpointsFile}. */
export interface WatchOptions extends Omit<WatchFileOptions, 'what' | 'onText' | 'maxBytes'> {
  /** Called with each new valid model (not for rewrites that leave the text unchanged). */
  readonly onModel: (model: Model) => void;
}

/**
 * Watches an endpoints file: reads it now and on every change, and hands each valid model to `onModel`. An
 * invalid file is logged, problem by problem, and the last good model keeps serving.
 */
export function watchEndpointsFile(file: string, options: WatchOptions): FileWatch {
  return watchTextFile(file, {
    ...options,
    what: 'endpoints file',
    maxBytes: MAX_FILE_BYTES,
    onText(text) {
      const parsed = parseEndpointsFile(text, file);
      if (!parsed.ok) {
        for (const problem of parsed.error) options.log.error('invalid endpoints file; keeping the last good configuration', { file: path.resolve(file), problem });
        return;
      }
      if (parsed.value.services.length === 0) options.log.warn('the endpoints file lists no services (services: []): every cluster and listener route is withdrawn', { file: path.resolve(file) });
      options.onModel(parsed.value);
    },
  });
}
