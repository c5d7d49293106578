import { err, ok, type Result } from '../result.js';
import type { Random } from './random.js';
import type { Burst, TokenSpec } from './scenario.js';

/** One request of a trace: when it arrives (seconds from the start) and its token counts. */
export interface Arrival {
  readonly t: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
}

/** Most problems listed for one trace; the rest are counted. */
const MAX_PROBLEMS = 20;

/**
 * Parses a trace: CSV with the header `time,input_tokens,output_tokens` (time in seconds from the start, a
 * decimal number), or JSON lines `{"time": 0.25, "input_tokens": 48, "output_tokens": 61}`; blank lines and
 * `#` comments are skipped. Times must not decrease. Every problem comes back as `file:line: reason`.
 */
export function parseTrace(text: string, file: string): Result<Arrival[], string[]> {
  const lines = text.split('\n');
  const problems: string[] = [];
  const out: Arrival[] = [];
  let csv: boolean | undefined;
  let more = 0;
  const problem = (line: number, reason: string) => {
    if (problems.length < MAX_PROBLEMS) problems.push(`${file}:${line}: ${reason}`);
    else more++;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (csv === undefined) {
      csv = !line.startsWith('{');
      if (csv) {
        if (line.replace(/\s/g, '') !== 'time,input_tokens,output_tokens') {
          problem(i + 1, `a CSV trace starts with the header "time,input_tokens,output_tokens", not "${line.slice(0, 60)}"`);
          break;
        }
        continue;
      }
    }
    let fields: unknown[];
    if (csv) {
      fields = line.split(',').map((f) => (f.trim() === '' ? NaN : Number(f)));
      if (fields.length !== 3) {
        problem(i + 1, `expected 3 fields (time,input_tokens,output_tokens), got ${fields.length}`);
        continue;
      }
    } else {
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(line) as Record<string, unknown>;
      } catch (e) {
        problem(i + 1, `not JSON: ${e instanceof Error ? e.message : String(e)}`);
        continue;
      }
      if (typeof o !== 'object' || o === null || Array.isArray(o)) {
        problem(i + 1, 'expected an object {"time", "input_tokens", "output_tokens"}');
        continue;
      }
      const unknown = Object.keys(o).filter((k) => !['time', 'input_tokens', 'output_tokens'].includes(k));
      if (unknown.length > 0) {
        problem(i + 1, `unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')}`);
        continue;
      }
      fields = [o['time'], o['input_tokens'], o['output_tokens']];
    }
    const [t, input, output] = fields as [unknown, unknown, unknown];
    if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) problem(i + 1, `time must be a number of seconds ≥ 0, got ${JSON.stringify(t)}`);
    else if (out.length > 0 && t < out[out.length - 1]!.t) problem(i + 1, `time ${t} is before the previous line's ${out[out.length - 1]!.t}: a trace is in arrival order`);
    else if (typeof input !== 'number' || !Number.isInteger(input) || input < 0) problem(i + 1, `input_tokens must be a whole number ≥ 0, got ${JSON.stringify(input)}`);
    else if (typeof output !== 'number' || !Number.isInteger(output) || output < 1) problem(i + 1, `output_tokens must be a whole number ≥ 1, got ${JSON.stringify(output)}`);
    else out.push({ t, inputTokens: input, outputTokens: output });
  }
  if (more > 0) problems.push(`${file}: and ${more} more problems`);
  if (problems.length > 0) return err(problems);
  if (out.length === 0) return err([`${file}:1: the trace has no requests`]);
  return ok(out);
}

/**
 * The diurnal pattern's rate at `t` seconds: a cosine day between `troughRatio × peak` and `peak`, highest at
 * `peakAtS` (time of day), times any burst in progress.
 */
export function patternRate(p: { peakRps: number; troughRatio: number; peakAtS: number; bursts: readonly Burst[] }, t: number): number {
  const day = 86_400;
  const phase = (2 * Math.PI * (t - p.peakAtS)) / day;
  const base = p.peakRps * (p.troughRatio + (1 - p.troughRatio) * (1 + Math.cos(phase)) / 2);
  return base * burstFactor(p.bursts, t);
}

function burstFactor(bursts: readonly Burst[], t: number): number {
  let f = 1;
  for (const b of bursts) {
    const into = t - b.atS;
    if (into < 0 || into > 2 * b.riseS + b.holdS) continue;
    const ramp = into < b.riseS ? into / b.riseS : into <= b.riseS + b.holdS ? 1 : (2 * b.riseS + b.holdS - into) / b.riseS;
    f = Math.max(f, 1 + (b.factor - 1) * ramp);
  }
  return f;
}

/** A token count drawn from `spec`. */
export function drawTokens(spec: TokenSpec, random: Random): number {
  return Math.max(1, Math.round(spec.mean * (1 - spec.spread + 2 * spec.spread * random.next())));
}

/** `k` token counts at evenly spaced quantiles of `spec`: the aggregate simulation's stand-in for the spread. */
export function tokenQuantiles(spec: TokenSpec, k: number): number[] {
  return Array.from({ length: k }, (_, i) => Math.max(1, spec.mean * (1 - spec.spread + (2 * spec.spread * (i + 0.5)) / k)));
}

/** `k` token counts at evenly spaced quantiles of a trace's counts. */
export function traceQuantiles(values: readonly number[], k: number): number[] {
  const sorted = [...values].sort((a, b) => a - b);
  return Array.from({ length: k }, (_, i) => sorted[Math.min(sorted.length - 1, Math.floor(((i + 0.5) / k) * sorted.length))]!);
}
