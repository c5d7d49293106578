import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import type { ListenerSpec, Model, Service } from '../../model/model.js';
import { runStepsAsync, type Steps } from '../../steps.js';
import { readModel } from '../../model/validate.js';
import { watchTextFile, type FileWatch, type WatchFileOptions } from '../../config/watch-file.js';
import { err, ok, type Result } from '../../result.js';
import { parseLocated } from '../../config/located.js';
import { fastYamlValue } from '../../config/yaml.js';

/** Files larger than this are refused rather than parsed. */
export const MAX_FILE_BYTES = 32 * 1024 * 1024;

/**
 * Parses the text of an endpoints file (YAML or JSON, the shape documented in examples/endpoints.yaml) into a
 * model. Every problem comes back as `file:line:column: path: reason`.
 */
export function parseEndpointsFile(text: string, file: string): Result<Model, string[]> {
  // A valid file read fast is the same model; anything else is read again, with positions for its messages.
  const fast = fastYamlValue(text);
  if (typeof fast === 'object' && fast !== null && !Array.isArray(fast) && 'services' in fast) {
    const model = readModel(fast);
    if (model.ok) return model;
  }
  const doc = parseLocated(text, file);
  // An empty or comments-only file is what a writer leaves between truncating and writing: never a new truth.
  if (!doc.ok) return err(doc.error.map((e) => (e === `${file}:1:1: the file is empty` ? `${e}; refusing it (write "services: []" to serve nothing)` : e)));
  const value = doc.value.value;
  if (typeof value === 'object' && value !== null && !Array.isArray(value) && !('services' in value)) {
    return err([`${file}:1:1: services: missing; refusing a file without it (write "services: []" to serve nothing)`]);
  }
  const model = readModel(value);
  return model.ok ? model : err(model.error.map(doc.value.describe));
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

/**
 * Texts at least this long are parsed on a worker thread: YAML parses at about a microsecond per byte, and the
 * event loop that serves every Envoy must not stop for longer than ~100 ms at a time.
 */
export const OFF_THREAD_BYTES = 64 * 1024;

/**
 * {@link parseEndpointsFile} on a worker thread, for large files. Resolves with the same result; the model
 * arrives in slices taken in between other work. A worker that fails (out of memory, a bug) resolves to an
 * error naming the file, never to a partial model.
 */
export function parseEndpointsFileOffThread(text: string, file: string): Promise<Result<Model, string[]>> {
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(workerSource(), { eval: true, workerData: { text, file, port: port2 }, transferList: [port2] });
  return new Promise<Result<Model, string[]>>((resolve) => {
    let settled = false;
    const settle = (r: Result<Model, string[]>) => {
      if (settled) return;
      settled = true;
      port1.close();
      resolve(r);
    };
    let answered = false;
    worker.once('message', (m: { ok: true; listener: ListenerSpec; slices: number } | { ok: false; error: string[] }) => {
      answered = true;
      if (!m.ok) return settle(err(m.error));
      runStepsAsync(receiveServices(port1, m.slices)).then(
        (services) => settle(services ? ok({ listener: m.listener, services }) : err([`${file}: the parser's worker thread sent an incomplete model`])),
        (e: unknown) => settle(err([`${file}: ${e instanceof Error ? e.message : String(e)}`])),
      );
    });
    worker.once('error', (e) => settle(err([`${file}: parsing failed on its worker thread: ${e.message}`])));
    // Its messages arrive before its exit: exiting unanswered means it died (or was stopped) first.
    worker.once('exit', (code) => {
      if (!answered) settle(err([`${file}: the parser's worker thread exited with code ${code} before answering`]));
    });
  });
}

/**
 * The worker's code: an import of parse-worker. Node 20 does not carry a development run's loader hooks
 * (tsx, for the .ts sources) into workers, so from source the worker registers them itself first.
 */
function workerSource(): string {
  const fromSource = path.extname(import.meta.url) === '.ts';
  const entry = JSON.stringify(new URL(`./parse-worker${fromSource ? '.ts' : '.js'}`, import.meta.url).href);
  if (!fromSource) return `import(${entry});`;
  // The ESM build of tsx's API, as its package exports name it (its CommonJS build cannot register hooks here).
  const require = createRequire(import.meta.url);
  const manifest = require.resolve('tsx/package.json');
  const api = pathToFileURL(path.join(path.dirname(manifest), (require(manifest) as { exports: Record<string, { import: { default: string } }> }).exports['./esm/api']!.import.default)).href;
  return `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${entry}); });`;
}

/** Takes `slices` messages of services off `port`, one per step; undefined if one is missing. */
function* receiveServices(port: MessagePort, slices: number): Steps<Service[] | undefined> {
  const services: Service[] = [];
  for (let i = 0; i < slices; i++) {
    const m = receiveMessageOnPort(port);
    if (!m) return undefined;
    for (const s of m.message as Service[]) services.push(s);
    yield;
  }
  return services;
}

/** Options of {@link watchEndpointsFile}. */
export interface WatchOptions extends Omit<WatchFileOptions, 'what' | 'onText' | 'maxBytes'> {
  /**
   * Called with each new valid model (not for rewrites that leave the text unchanged); `changedAt` (epoch
   * ms) is when the change it carries was first noticed.
   */
  readonly onModel: (model: Model, changedAt: number) => void;
}

/** A running watch of an endpoints file. */
export interface EndpointsFileWatch extends FileWatch {
  /** Settles once the text read at the start has been handed to `onModel` or refused (or could not be read). */
  readonly initial: Promise<void>;
  /** Why the file's latest version was refused or could not be read; undefined while it is valid (or unread). */
  problems(): readonly string[] | undefined;
}

/**
 * Watches an endpoints file: reads it now and on every change, and hands each valid model to `onModel`. An
 * invalid file is logged, problem by problem, and the last good model keeps serving. Large files are parsed
 * off the event loop (see {@link OFF_THREAD_BYTES}), one at a time; texts that arrive meanwhile wait, and
 * only the newest of them is parsed next.
 */
export function watchEndpointsFile(file: string, options: WatchOptions): EndpointsFileWatch {
  const abs = path.resolve(file);
  let problems: readonly string[] | undefined;
  let handed = false;
  const apply = (parsed: Result<Model, string[]>, changedAt: number) => {
    if (!parsed.ok) {
      problems = parsed.error;
      const msg = handed ? 'invalid endpoints file; keeping the last good configuration' : 'invalid endpoints file; nothing is served until it is fixed';
      for (const problem of parsed.error) options.log.error(msg, { file: abs, problem });
      return;
    }
    problems = undefined;
    handed = true;
    if (parsed.value.services.length === 0) options.log.warn('the endpoints file lists no services (services: []): every cluster and listener route is withdrawn', { file: abs });
    options.onModel(parsed.value, changedAt);
  };
  let parsing: Promise<void> | undefined;
  // The newest text waiting for the parse in progress, with the time of the first change it stands for.
  let waiting: { text: string; changedAt: number } | undefined;
  let closed = false;
  const parse = (text: string, changedAt: number): void => {
    if (text.length < OFF_THREAD_BYTES) return apply(parseEndpointsFile(text, file), changedAt);
    parsing = parseEndpointsFileOffThread(text, file).then((parsed) => {
      parsing = undefined;
      if (closed) return;
      apply(parsed, changedAt);
      const next = waiting;
      waiting = undefined;
      if (next !== undefined) parse(next.text, next.changedAt);
    });
  };
  const watch = watchTextFile(file, {
    ...options,
    what: 'endpoints file',
    maxBytes: MAX_FILE_BYTES,
    onReadError: (error) => void (problems = [`${file}: cannot read: ${error}`]),
    onText(text, changedAt) {
      if (parsing) waiting = { text, changedAt: waiting?.changedAt ?? changedAt };
      else parse(text, changedAt);
    },
  });
  return {
    initial: parsing ?? Promise.resolve(),
    problems: () => problems,
    reload: watch.reload,
    close() {
      closed = true;
      watch.close();
    },
  };
}
