// Load for the compose demo: constant arrivals of short completions through Envoy (k6, grafana/k6 image).
import http from 'k6/http';
import { check } from 'k6';

export const options = {
  scenarios: { steady: { executor: 'constant-arrival-rate', rate: 50, timeUnit: '1s', duration: '10m', preAllocatedVUs: 100 } },
};

const body = JSON.stringify({ model: 'meta-llama/Llama-3.1-8B-Instruct', prompt: 'Write one sentence about GPUs.', max_tokens: 50 });

export default function () {
  const r = http.post('http://envoy:10000/v1/completions', body, { headers: { 'content-type': 'application/json' } });
  check(r, { 'status 200': (res) => res.status === 200 });
}
