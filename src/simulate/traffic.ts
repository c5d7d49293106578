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

/** The header of the Azure LLM inference traces (Azure Public Dataset, 2023): a timestamp and two token counts. */
const AZURE_HEADER = 'TIMESTAMP,ContextTokens,GeneratedTokens';

/**
 * Seconds since the epoch of an Azure trace timestamp, `YYYY-MM-DD HH:MM:SS.fffffff` (UTC, up to 7 fractional
 * digits, which Date.parse does not take); NaN when it is not one.
 */
function azureTime(v: string): number {
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?$/.exec(v.trim());
  if (!m) return NaN;
  const whole = Date.parse(`${m[1]}T${m[2]}Z`);
  return Number.isNaN(whole) ? NaN : whole / 1000 + (m[3] ? Number(`0.${m[3]}`) : 0);
}

/**
 * Parses a trace: CSV with the header `time,input_tokens,output_tokens` (time in seconds from the start, a
 * decimal number), the Azure LLM inference trace format (`TIMESTAMP,ContextTokens,GeneratedTokens`, times
 * taken from the first row's), or JSON lines `{"time": 0.25, "input_tokens": 48, "output_tokens": 61}`; blank
 * lines and `#` comments are skipped. Times must not decrease. Every problem comes back as `file:line: reason`.
 */
export function parseTrace(text: string, file: string): Result<Arrival[], string[]> {
  const lines = text.split('\n');
  const problems: string[] = [];
  const out: Arrival[] = [];
  let csv: boolean | undefined;
  let azure = false;
  let origin: number | undefined;
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
        azure = line.replace(/\s/g, '') === AZURE_HEADER;
        if (!azure && line.replace(/\s/g, '') !== 'time,input_tokens,output_tokens') {
          problem(i + 1, `a CSV trace starts with the header "time,input_tokens,output_tokens" (or Azure's "${AZURE_HEADER}"), not "${line.slice(0, 60)}"`);
          break;
        }
        continue;
      }
    }
    let fields: unknown[];
    if (csv && azure) {
      const parts = line.split(',');
      const at = azureTime(parts[0] ?? '');
      if (!Number.isNaN(at)) origin ??= at;
      fields = [Number.isNaN(at) ? parts[0] : at - origin!, ...parts.slice(1).map((f) => (f.trim() === '' ? NaN : Number(f)))];
      if (fields.length !== 3) {
        problem(i + 1, `expected 3 fields (${AZURE_HEADER}), got ${fields.length}`);
        continue;
      }
    } else if (csv) {
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
    if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) problem(i + 1, azure ? `TIMESTAMP must be "YYYY-MM-DD HH:MM:SS.fffffff", got ${JSON.stringify(t)}` : `time must be a number of seconds ≥ 0, got ${JSON.stringify(t)}`);
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

/**
 * A trace stacked `scale` times: copy k is shifted by an offset drawn uniformly from [0, shiftS) seconds,
 * wrapping around the trace's length (a fractional scale adds a last copy of that weight). Returns the
 * arrivals per second over `lengthS`. Shifts of minutes keep the trace's shape over minutes and average away
 * the per-second noise of a small population, as many independent copies of its users would; multiplying the
 * counts instead would multiply that noise too.
 */
export function stackedCounts(arrivals: readonly Arrival[], lengthS: number, scale: number, shiftS: number, random: Random): Float64Array {
  const length = Math.max(1, Math.ceil(lengthS));
  const counts = new Float64Array(length);
  for (const a of arrivals) if (a.t < length) counts[Math.floor(a.t)]! += 1;
  const shifts = new Float64Array(Math.max(1, Math.ceil(shiftS)));
  const whole = Math.floor(scale);
  for (let k = 0; k < whole; k++) shifts[random.int(shifts.length)]! += 1;
  if (scale > whole) shifts[random.int(shifts.length)]! += scale - whole;
  const out = new Float64Array(length);
  for (let d = 0; d < shifts.length; d++) {
    const w = shifts[d]!;
    if (w === 0) continue;
    for (let t = 0; t < length; t++) out[(t + d) % length]! += w * counts[t]!;
  }
  return out;
}
