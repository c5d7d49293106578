import http from 'node:http';
import { listen, type ListeningServer } from '../observability/http.js';
import { createEngine, DEFAULT_ENGINE, type EngineClock, type EngineParams } from './engine.js';

/**
 * Options of the vLLM simulator: a test and demo stand-in for a vLLM OpenAI-compatible server (no model runs;
 * latency follows the engine model in engine.ts and hardware.ts).
 */
export interface SimOptions {
  readonly model: string;
  readonly engine: EngineParams;
  /** Seconds of "model loading" after start: /health answers 503 and requests are refused until done. */
  readonly loadSeconds: number;
  /** Largest request body accepted, in bytes. */
  readonly maxBodyBytes: number;
  readonly clock?: EngineClock;
}

/** Defaults: see {@link DEFAULT_ENGINE}. */
export const DEFAULT_SIM: SimOptions = { model: 'meta-llama/Llama-3.1-8B-Instruct', engine: DEFAULT_ENGINE, loadSeconds: 0, maxBodyBytes: 1 << 20 };

/** A running simulator. */
export type SimServer = ListeningServer;

const realClock: EngineClock = { now: () => performance.now(), setTimeout: (fn, ms) => setTimeout(fn, ms) };

/** Histogram buckets (seconds) for the latency metrics, like vLLM's. */
const BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

class Histogram {
  readonly counts = BUCKETS.map(() => 0);
  sum = 0;
  count = 0;
  observe(v: number): void {
    this.sum += v;
    this.count++;
    BUCKETS.forEach((b, i) => {
      if (v <= b) this.counts[i]!++;
    });
  }
  render(name: string, labels: string): string[] {
    return [
      `# TYPE ${name} histogram`,
      ...BUCKETS.map((b, i) => `${name}_bucket{${labels},le="${b}"} ${this.counts[i]}`),
      `${name}_bucket{${labels},le="+Inf"} ${this.count}`,
      `${name}_sum{${labels}} ${this.sum}`,
      `${name}_count{${labels}} ${this.count}`,
    ];
  }
}

function openAiError(res: http.ServerResponse, status: number, type: string, message: string, param: string | null = null, code: string | null = null): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: { message, type, param, code } }));
}

/** Rough token count of text (vLLM counts with the model's tokenizer; ~4 characters a token is close enough here). */
function tokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

/** Starts the simulator on `host:port` (port 0 for any free port). */
export async function startSimServer(o: SimOptions, host: string, port: number): Promise<SimServer> {
  const clock = o.clock ?? realClock;
  const engine = createEngine(o.engine, clock);
  const readyAt = clock.now() + o.loadSeconds * 1000;
  const ready = () => clock.now() >= readyAt;
  const e2e = new Histogram();
  const ttft = new Histogram();
  const tpot = new Histogram();
  let success = 0;
  let aborted = 0;
  let seq = 0;

  const metrics = () => {
    const l = `model_name="${o.model}"`;
    return [
      '# TYPE vllm:num_requests_running gauge', `vllm:num_requests_running{${l}} ${engine.running()}`,
      '# TYPE vllm:num_requests_waiting gauge', `vllm:num_requests_waiting{${l}} ${engine.waiting()}`,
      '# TYPE vllm:kv_cache_usage_perc gauge', `vllm:kv_cache_usage_perc{${l}} ${engine.kvUsage()}`,
      '# TYPE vllm:gpu_cache_usage_perc gauge', `vllm:gpu_cache_usage_perc{${l}} ${engine.kvUsage()}`,
      '# TYPE vllm:request_success_total counter', `vllm:request_success_total{${l},finished_reason="length"} ${success}`,
      `vllm:request_success_total{${l},finished_reason="abort"} ${aborted}`,
      ...e2e.render('vllm:e2e_request_latency_seconds', l),
      ...ttft.render('vllm:time_to_first_token_seconds', l),
      ...tpot.render('vllm:time_per_output_token_seconds', l),
    ].join('\n') + '\n';
  };

  const generate = (res: http.ServerResponse, body: Record<string, unknown>, chat: boolean) => {
    if (body['model'] === undefined || body['model'] === null) return openAiError(res, 400, 'BadRequestError', 'model is required: the served model is ' + JSON.stringify(o.model), 'model', 'missing_required_parameter');
    if (typeof body['model'] !== 'string') return openAiError(res, 400, 'BadRequestError', 'model must be a string', 'model');
    if (body['model'] !== o.model) return openAiError(res, 404, 'NotFoundError', `The model \`${String(body['model'])}\` does not exist.`, 'model', 'model_not_found');
    let prompt: string;
    if (chat) {
      const messages = body['messages'];
      if (!Array.isArray(messages) || messages.length === 0 || messages.some((m) => typeof m?.content !== 'string' || typeof m?.role !== 'string')) {
        return openAiError(res, 400, 'BadRequestError', 'messages must be a non-empty list of {role, content} with string content', 'messages');
      }
      prompt = messages.map((m: { content: string }) => m.content).join('\n');
    } else {
      const p = body['prompt'];
      if (typeof p !== 'string' && !(Array.isArray(p) && p.length === 1 && typeof p[0] === 'string')) return openAiError(res, 400, 'BadRequestError', 'prompt must be a string', 'prompt');
      prompt = typeof p === 'string' ? p : p[0];
    }
    const maxTokens = body['max_tokens'] ?? 16;
    if (typeof maxTokens !== 'number' || !Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > 8192) return openAiError(res, 400, 'BadRequestError', 'max_tokens must be a whole number from 1 to 8192', 'max_tokens');
    if (body['stream'] !== undefined && typeof body['stream'] !== 'boolean') return openAiError(res, 400, 'BadRequestError', 'stream must be true or false', 'stream');
    const stream = body['stream'] === true;
    const id = `${chat ? 'chatcmpl' : 'cmpl'}-sim-${++seq}`;
    const created = Math.floor(Date.now() / 1000);
    const object = chat ? (stream ? 'chat.completion.chunk' : 'chat.completion') : 'text_completion';
    const inputTokens = tokens(prompt);
    const start = clock.now();
    let first = start;
    const words: string[] = [];
    let finished = false;
    let cancel: () => void;
    try {
      cancel = engine.submit({
        inputTokens,
        maxTokens,
        onFirstToken: (at) => {
          first = at;
          ttft.observe((at - start) / 1000);
        },
        onToken: (i) => {
          const word = `${i === 0 ? '' : ' '}token${i}`;
          words.push(word);
          if (stream) {
            const choice = chat ? { index: 0, delta: i === 0 ? { role: 'assistant', content: word } : { content: word }, finish_reason: null } : { index: 0, text: word, logprobs: null, finish_reason: null };
            res.write(`data: ${JSON.stringify({ id, object, created, model: o.model, choices: [choice] })}\n\n`);
          }
        },
        onDone: (at) => {
          finished = true;
          success++;
          e2e.observe((at - start) / 1000);
          if (maxTokens > 1) tpot.observe((at - first) / 1000 / (maxTokens - 1));
          const usage = { prompt_tokens: inputTokens, completion_tokens: maxTokens, total_tokens: inputTokens + maxTokens };
          if (stream) {
            const last = chat ? { index: 0, delta: {}, finish_reason: 'length' } : { index: 0, text: '', logprobs: null, finish_reason: 'length' };
            res.write(`data: ${JSON.stringify({ id, object, created, model: o.model, choices: [last], usage })}\n\n`);
            res.end('data: [DONE]\n\n');
            return;
          }
          const text = words.join('');
          const choice = chat ? { index: 0, message: { role: 'assistant', content: text }, finish_reason: 'length' } : { index: 0, text, logprobs: null, finish_reason: 'length' };
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ id, object, created, model: o.model, choices: [choice], usage }));
        },
      });
    } catch (e) {
      // vLLM refuses a prompt plus max_tokens beyond what it can hold, before it starts.
      return openAiError(res, 400, 'BadRequestError', (e as Error).message, 'max_tokens');
    }
    if (stream) res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    // A client gone before the end aborts the request, as vLLM does: it stops counting as running and is no success.
    res.on('close', () => {
      if (finished) return;
      cancel();
      aborted++;
    });
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://sim');
    const route = `${req.method} ${url.pathname}`;
    if (route === 'GET /health') return ready() ? void res.writeHead(200).end() : openAiError(res, 503, 'ServiceUnavailableError', 'model is loading');
    if (route === 'GET /metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      return void res.end(metrics());
    }
    if (route === 'GET /v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ object: 'list', data: [{ id: o.model, object: 'model', created: 0, owned_by: 'inferplane-sim' }] }));
    }
    const chat = url.pathname === '/v1/chat/completions';
    if (url.pathname !== '/v1/completions' && !chat) {
      const known = ['/health', '/metrics', '/v1/models'].includes(url.pathname);
      return openAiError(res, known ? 405 : 404, known ? 'MethodNotAllowed' : 'NotFoundError', known ? `${req.method} is not allowed on ${url.pathname}` : `no route ${url.pathname}`);
    }
    if (req.method !== 'POST') return openAiError(res, 405, 'MethodNotAllowed', `${req.method} is not allowed on ${url.pathname}; use POST`);
    if (!ready()) return openAiError(res, 503, 'ServiceUnavailableError', 'model is loading');
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (d: Buffer) => {
      if (refused) return;
      size += d.length;
      if (size > o.maxBodyBytes) {
        refused = true;
        openAiError(res, 413, 'BadRequestError', `request body is larger than ${o.maxBodyBytes} bytes`);
        req.destroy();
        return;
      }
      chunks.push(d);
    });
    req.on('end', () => {
      if (refused) return;
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (e) {
        return openAiError(res, 400, 'BadRequestError', `request body is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body)) return openAiError(res, 400, 'BadRequestError', 'request body must be a JSON object');
      generate(res, body as Record<string, unknown>, chat);
    });
  });
  return listen(server, host, port);
}
