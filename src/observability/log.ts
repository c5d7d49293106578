import pino from 'pino';
import pretty from 'pino-pretty';

/** Structured logging: one JSON object per line. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Log levels, least severe first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

/** How lines look: JSON (machines, the default) or text for a person at a terminal. */
export type LogFormat = 'json' | 'text';

/**
 * A pino logger on stderr at or above `level`. JSON lines carry `time` (ISO 8601), `level` (its name), `msg`
 * and the fields, as they always have; `text` is pino-pretty's one line per entry, for a terminal. Writes are
 * synchronous, so nothing logged just before an exit is lost.
 */
export function createLogger(level: LogLevel = 'info', format: LogFormat = 'json', destination: NodeJS.WritableStream | number = 2): Logger {
  const stream = format === 'text'
    ? pretty({ sync: true, destination: typeof destination === 'number' ? pino.destination({ dest: destination, sync: true }) : destination, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' })
    : typeof destination === 'number' ? pino.destination({ dest: destination, sync: true }) : destination;
  const p = pino({
    level,
    base: undefined,
    timestamp: () => `,"time":"${new Date().toISOString()}"`,
    formatters: { level: (label) => ({ level: label }) },
  }, stream);
  const emit = (lv: Exclude<LogLevel, 'silent'>) => (msg: string, fields?: Record<string, unknown>) => (fields ? p[lv](fields, msg) : p[lv](msg));
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}

/** A logger that keeps lines in memory: for tests that assert what was reported. */
export function createMemoryLogger(): Logger & { lines: { level: LogLevel; msg: string; fields: Record<string, unknown> }[] } {
  const lines: { level: LogLevel; msg: string; fields: Record<string, unknown> }[] = [];
  const emit = (level: LogLevel) => (msg: string, fields: Record<string, unknown> = {}) => void lines.push({ level, msg, fields });
  return { lines, debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}
