import { expect } from 'chai';
import { DEFAULT_ENGINE } from '../../src/sim/engine.js';
import { DEFAULT_SIM, startSimServer, type SimServer } from '../../src/sim/server.js';
import { eventually } from '../support/harness.js';

const MODEL = DEFAULT_SIM.model;

describe('vLLM simulator HTTP server', () => {
  let sim: SimServer;
  let base: string;
  before(async () => {
    // A slow decode step (20 ms) makes token-by-token streaming observable.
    sim = await startSimServer({ ...DEFAULT_SIM, engine: { ...DEFAULT_ENGINE, slowdown: 6 }, maxBodyBytes: 10_000 }, '127.0.0.1', 0);
    base = `http://127.0.0.1:${sim.port}`;
  });
  after(() => sim.close());

  const post = (path: string, body: unknown) => fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });

  it('lists its model and is healthy', async () => {
    expect((await fetch(`${base}/health`)).status).to.equal(200);
    const models = (await (await fetch(`${base}/v1/models`)).json()) as any;
    expect(models.data.map((m: { id: string }) => m.id)).to.deep.equal([MODEL]);
  });

  it('answers /v1/completions with text and usage', async () => {
    const r = await post('/v1/completions', { model: MODEL, prompt: 'The capital of France is', max_tokens: 3 });
    expect(r.status).to.equal(200);
    const body = (await r.json()) as any;
    expect(body).to.include({ object: 'text_completion', model: MODEL });
    expect(body.choices[0]).to.include({ text: 'token0 token1 token2', finish_reason: 'length' });
    expect(body.usage).to.deep.equal({ prompt_tokens: 6, completion_tokens: 3, total_tokens: 9 });
  });

  it('streams /v1/chat/completions token by token over SSE, then [DONE]', async () => {
    const r = await post('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 5, stream: true });
    expect(r.headers.get('content-type')).to.equal('text/event-stream');
    const arrivals: number[] = [];
    const events: string[] = [];
    const decoder = new TextDecoder();
    let buffered = '';
    for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>) {
      buffered += decoder.decode(chunk, { stream: true });
      const parts = buffered.split('\n\n');
      buffered = parts.pop()!;
      for (const p of parts) {
        events.push(p.replace(/^data: /, ''));
        arrivals.push(performance.now());
      }
    }
    expect(events.pop()).to.equal('[DONE]');
    const chunks = events.map((e) => JSON.parse(e));
    expect(chunks.map((c) => c.choices[0].delta.content ?? '').join('')).to.equal('token0 token1 token2 token3 token4');
    expect(chunks[0].choices[0].delta.role).to.equal('assistant');
    expect(chunks.at(-1).choices[0].finish_reason).to.equal('length');
    // Tokens arrive one decode step apart, not all at once.
    expect(arrivals[4]! - arrivals[0]!).to.be.greaterThan(50);
  });

  const bad: [string, () => Promise<Response>, number, string][] = [
    ['malformed JSON', () => post('/v1/completions', '{"model": '), 400, 'request body is not valid JSON'],
    ['an unknown model', () => post('/v1/completions', { model: 'gpt-9', prompt: 'x' }), 404, 'The model `gpt-9` does not exist.'],
    ['a request without model', () => post('/v1/completions', { prompt: 'x' }), 400, 'model is required'],
    ['a model that is not a string', () => post('/v1/chat/completions', { model: 7, messages: [{ role: 'user', content: 'x' }] }), 400, 'model must be a string'],
    ['an oversize body', () => post('/v1/completions', { model: MODEL, prompt: 'x'.repeat(20_000) }), 413, 'larger than 10000 bytes'],
    ['a bad max_tokens', () => post('/v1/completions', { model: MODEL, prompt: 'x', max_tokens: 0 }), 400, 'max_tokens must be'],
    ['chat without messages', () => post('/v1/chat/completions', { model: MODEL }), 400, 'messages must be'],
    ['GET on a generation route', () => fetch(`${base}/v1/completions`), 405, 'use POST'],
    ['an unknown route', () => fetch(`${base}/v2/x`), 404, 'no route /v2/x'],
  ];
  for (const [what, call, status, message] of bad) {
    it(`answers ${what} with an OpenAI-style error and ${status}`, async () => {
      const r = await call();
      expect(r.status).to.equal(status);
      const body = (await r.json()) as any;
      expect(body.error.message).to.contain(message);
      expect(body.error).to.have.keys('message', 'type', 'param', 'code');
    });
  }

  it('names the missing field when model is left out', async () => {
    const body = (await (await post('/v1/completions', { prompt: 'x' })).json()) as any;
    expect(body.error).to.include({ param: 'model', type: 'BadRequestError' });
  });

  const metric = async (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await (await fetch(`${base}/metrics`)).text())?.[1]);

  it('aborts a request whose client goes away, as vLLM does: it stops running at once and is no success', async () => {
    const success = await metric(`vllm:request_success_total\\{model_name="${MODEL}",finished_reason="length"\\}`);
    const ac = new AbortController();
    const streaming = fetch(`${base}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: MODEL, prompt: 'x', max_tokens: 2000, stream: true }), signal: ac.signal });
    const res = await streaming;
    const reader = res.body!.getReader();
    await reader.read(); // the first token: the request is running
    expect(await metric(`vllm:num_requests_running\\{model_name="${MODEL}"\\}`)).to.be.greaterThan(0);
    ac.abort();
    await eventually(async () => (await metric(`vllm:num_requests_running\\{model_name="${MODEL}"\\}`)) === 0, 'the aborted request leaves the batch');
    expect(await metric(`vllm:request_success_total\\{model_name="${MODEL}",finished_reason="length"\\}`)).to.equal(success);
    expect(await metric(`vllm:request_success_total\\{model_name="${MODEL}",finished_reason="abort"\\}`)).to.be.greaterThan(0);
  });

  it("exposes vLLM's metric names", async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    for (const name of ['vllm:num_requests_running', 'vllm:num_requests_waiting', 'vllm:gpu_cache_usage_perc', 'vllm:e2e_request_latency_seconds_bucket', 'vllm:time_to_first_token_seconds_count', 'vllm:time_per_output_token_seconds_sum', 'vllm:request_success_total']) {
      expect(text).to.contain(`${name}{model_name="${MODEL}"`);
    }
  });

  it('reports not ready while the model "loads", then ready', async () => {
    const loading = await startSimServer({ ...DEFAULT_SIM, loadSeconds: 0.2 }, '127.0.0.1', 0);
    try {
      expect((await fetch(`http://127.0.0.1:${loading.port}/health`)).status).to.equal(503);
      const early = await fetch(`http://127.0.0.1:${loading.port}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: MODEL, prompt: 'x' }) });
      expect(early.status).to.equal(503);
      await eventually(async () => (await fetch(`http://127.0.0.1:${loading.port}/health`)).status === 200, 'loaded');
    } finally {
      await loading.close();
    }
  });
});
