import fs from 'node:fs';
import path from 'node:path';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import type { Model } from '../../model/model.js';
import { formatPath, readModel, type Path } from '../../model/validate.js';
import type { Logger } from '../../observability/log.js';
import { err, type Result } from '../../result.js';

/** Files larger than this are refused rather than parsed. */
export const MAX_FILE_BYTES = 32 * 1024 * 1024;

/**
 * Parses the text of an endpoints file (YAML or JSON, the shape documented in examples/endpoints.yaml) into a
 * model. Every problem comes back as `file:line:column: path: reason`.
 */
export function parseEndpointsFile(text: string, file: string): Result<Model, string[]> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    return err(doc.errors.map((e) => {
      const pos = lines.linePos(e.pos[0]);
      return `${file}:${pos.line}:${pos.col}: ${e.message.split('\n')[0]}`;
    }));
  }
  const model = readModel(doc.toJS());
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
export interface WatchOptions {
  readonly log: Logger;
  /** Called with each new valid model (not for rewrites that leave the text unchanged). */
  readonly onModel: (model: Model) => void;
  /** Quiet time after a change before reading, so an editor's several writes are read once. Default 50 ms. */
  readonly debounceMs?: number;
  /** Stat-polling interval, the fallback where file events are unreliable (network mounts). Default 1 s. */
  readonly pollMs?: number;
}

/** A running watch. */
export interface FileWatch {
  /** Reads the file now (also called on every change). Resolves once the read is applied or rejected. */
  reload(): void;
  close(): void;
}

/**
 * Watches an endpoints file: reads it now and on every change (the directory is watched, so editors that
 * replace the file atomically are seen), and hands each valid model to `onModel`. An invalid file is logged,
 * problem by problem, and the last good model keeps serving.
 */
export function watchEndpointsFile(file: string, options: WatchOptions): FileWatch {
  const { log } = options;
  const abs = path.resolve(file);
  let lastText: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  const reload = () => {
    let text: string;
    try {
      text = fs.readFileSync(abs, 'utf8');
    } catch (e) {
      log.error('cannot read endpoints file; keeping the last good configuration', { file: abs, error: e instanceof Error ? e.message : String(e) });
      return;
    }
    if (text === lastText) return;
    lastText = text;
    const parsed = text.length > MAX_FILE_BYTES ? err([`${file}: over the ${MAX_FILE_BYTES}-byte limit`]) : parseEndpointsFile(text, file);
    if (!parsed.ok) {
      for (const problem of parsed.error) log.error('invalid endpoints file; keeping the last good configuration', { file: abs, problem });
      return;
    }
    options.onModel(parsed.value);
  };
  const changed = () => {
    clearTimeout(timer);
    timer = setTimeout(reload, options.debounceMs ?? 50);
  };
  let watcher: fs.FSWatcher | undefined;
  try {
    watcher = fs.watch(path.dirname(abs), (_event, name) => {
      if (name === null || name === path.basename(abs)) changed();
    });
    watcher.on('error', (e) => log.warn('file watch failed; relying on polling', { file: abs, error: e.message }));
  } catch (e) {
    log.warn('cannot watch directory; relying on polling', { file: abs, error: e instanceof Error ? e.message : String(e) });
  }
  const poll = (cur: fs.Stats, prev: fs.Stats) => {
    if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size || cur.ino !== prev.ino) changed();
  };
  fs.watchFile(abs, { interval: options.pollMs ?? 1000, persistent: false }, poll);
  reload();
  return {
    reload,
    close() {
      clearTimeout(timer);
      watcher?.close();
      fs.unwatchFile(abs, poll);
    },
  };
}
