import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../observability/log.js';

/** Options of {@link watchTextFile}. */
export interface WatchFileOptions {
  readonly log: Logger;
  /** What the file is, for logs ("endpoints file", "scaling policy"). */
  readonly what: string;
  /**
   * Called with the text now and after every change that alters it; whether it is valid is the caller's.
   * `changedAt` (epoch ms) is when the change was first noticed (for the start, when it was read).
   */
  readonly onText: (text: string, changedAt: number) => void;
  /** Quiet time after a change before reading, so an editor's several writes are read once. Default 50 ms. */
  readonly debounceMs?: number;
  /** Stat-polling interval, the fallback where file events are unreliable (network mounts). Default 1 s. */
  readonly pollMs?: number;
  /** Larger files are refused (logged) rather than read. */
  readonly maxBytes: number;
  /** Called, besides the log line, when the file cannot be read (missing, unreadable, too large). */
  readonly onReadError?: (message: string) => void;
}

/** A running watch. */
export interface FileWatch {
  /** Reads the file now (also done on every change). */
  reload(): void;
  close(): void;
}

/**
 * Watches a text file: reads it now and on every change (the directory is watched, so editors and ConfigMap
 * mounts that replace the file atomically are seen, with stat polling as the fallback). A file that cannot be
 * read is logged and the caller keeps what it had.
 */
export function watchTextFile(file: string, o: WatchFileOptions): FileWatch {
  const abs = path.resolve(file);
  let lastText: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let changedAt: number | undefined;
  const reload = () => {
    const at = changedAt ?? Date.now();
    changedAt = undefined;
    let text: string;
    try {
      const size = fs.statSync(abs).size;
      if (size > o.maxBytes) throw new Error(`${size} bytes is over the ${o.maxBytes}-byte limit`);
      text = fs.readFileSync(abs, 'utf8');
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      o.log.error(lastText === undefined ? `cannot read ${o.what}; nothing is taken from it until it can be read` : `cannot read ${o.what}; keeping the last good configuration`, { file: abs, error });
      o.onReadError?.(error);
      return;
    }
    if (text === lastText) return;
    lastText = text;
    o.onText(text, at);
  };
  const changed = () => {
    changedAt ??= Date.now();
    clearTimeout(timer);
    timer = setTimeout(reload, o.debounceMs ?? 50);
  };
  let watcher: fs.FSWatcher | undefined;
  try {
    watcher = fs.watch(path.dirname(abs), (_event, name) => {
      if (name === null || name === path.basename(abs) || name.startsWith('..')) changed();
    });
    watcher.on('error', (e) => o.log.warn('file watch failed; relying on polling', { file: abs, error: e.message }));
  } catch (e) {
    o.log.warn('cannot watch directory; relying on polling', { file: abs, error: e instanceof Error ? e.message : String(e) });
  }
  const poll = (cur: fs.Stats, prev: fs.Stats) => {
    if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size || cur.ino !== prev.ino) changed();
  };
  fs.watchFile(abs, { interval: o.pollMs ?? 1000, persistent: false }, poll);
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
