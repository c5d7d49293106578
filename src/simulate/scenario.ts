import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { parseLocated } from '../config/located.js';
import { parseDuration, type Problem } from '../model/validate.js';
import { err, ok, type Result } from '../result.js';
import { DEFAULT_POLICY, type ScalingPolicy } from '../scaler/decide.js';
import { readPolicy } from '../scaler/policy.js';
import { checkEngineSpec, DEFAULT_PRESET, ENGINE_PRESETS, GPUS, MODELS, type EngineSpec, type GpuSpec, type ModelSpec } from '../sim/hardware.js';
import { parseTrace, type Arrival } from './traffic.js';
import { loadEndpointsFile } from '../sources/file/endpoints-file.js';
import type { Mode, Service } from '../model/model.js';

/** How a balancer picks a pod (each balancer counts only its own requests in flight, as each Envoy does). */
export type BalancerPolicy = 'least-request' | 'round-robin' | 'random';

/** Who sizes the fleet in a run. */
export type Scaling =
  | { readonly kind: 'policy'; readonly source: string; readonly policy: ScalingPolicy }
  | { readonly kind: 'kpa' }
  | { readonly kind: 'hpa' }
  | { readonly kind: 'fixed'; readonly replicas: number | 'peak' }
  | { readonly kind: 'oracle' }
  /** Knows the arrival rate of each second (no lag, no noise) and has `headroom` above the fewest full batches for it; pays cold starts. */
  | { readonly kind: 'exact-rate'; readonly headroom: number };

/**
 * A new pod's way to ready, each part uniform in its range (seconds): a node for it (0 when one is free), the
 * image pull, the weight load, and the engine's warm-up (CUDA graphs, compilation) before /health answers.
 */
export interface ColdStart {
  readonly nodeS: readonly [number, number];
  readonly pullS: readonly [number, number];
  readonly loadS: readonly [number, number];
  readonly warmupS: readonly [number, number];
}

/** One side of the side-by-side comparison. */
export interface RunSpec {
  readonly name: string;
  readonly balancer: BalancerPolicy;
  readonly scaling: Scaling;
  /** A policy run's mode forced for the whole run, as `inferplane mode SERVICE MODE` forces it; null: decided. */
  readonly forcedMode: Mode | null;
  /** This run's cold start, when it differs from the fleet's (to compare cold-start profiles side by side). */
  readonly coldStart: ColdStart | null;
  /**
   * `equal`: every endpoint weighs the same (Envoy's least request runs two choices). `load`: the control plane
   * sets each endpoint's weight every second from the pods' own load (src/balance/weights.ts), and Envoy's least
   * request weighs its own counts by them. Per-request mode only.
   */
  readonly weights: 'equal' | 'load';
}

/** A share of the requests on one route of the service, with its own SLO and token mix. */
export interface TrafficClass {
  readonly name: string;
  /** Fraction of all requests, 0–1; the classes' shares add up to 1. */
  readonly share: number;
  /** The route (by name) its requests take: what a playbook's `shed` list names. Null: no named route. */
  readonly route: string | null;
  readonly sloMs: number;
  readonly inputTokens: TokenSpec;
  readonly outputTokens: TokenSpec;
}

/** The simulated fleet's service as the endpoints file declares it: its routes, timeout and playbooks. */
export interface SimulatedService {
  readonly file: string;
  readonly service: Service;
  /** Times a client sends a shed request again, each after the Retry-After Envoy answered with. */
  readonly shedRetries: number;
  /** The fleet of the service the playbooks fall back to (fixed size, its own engine); null when none does. */
  readonly fallback: { readonly name: string; readonly engine: EngineSpec; readonly replicas: number } | null;
}

/** Where requests come from. Rates are requests per second. */
export type Traffic =
  | { readonly kind: 'pattern'; readonly peakRps: number; readonly troughRatio: number; readonly peakAtS: number; readonly bursts: readonly Burst[] }
  | { readonly kind: 'constant'; readonly rps: number | null; readonly load: number | null }
  /**
   * A trace replayed with its arrival shape and token mix; `scale` stacked copies of it, each shifted by up to
   * `shiftS` seconds (src/simulate/traffic.ts, stackedCounts), when its rate is scaled.
   */
  | { readonly kind: 'trace'; readonly file: string; readonly arrivals: readonly Arrival[]; readonly scale: number; readonly shiftS: number };

/** A surge on top of the pattern: the rate climbs to `factor`× over `riseS`, holds `holdS`, and falls back over `riseS`. */
export interface Burst {
  readonly atS: number;
  readonly factor: number;
  readonly riseS: number;
  readonly holdS: number;
}

/** Token counts of generated requests: uniform in mean × [1 − spread, 1 + spread], whole and at least 1. */
export interface TokenSpec {
  readonly mean: number;
  readonly spread: number;
}

/** A validated scenario: everything one `inferplane simulate` run needs. */
export interface Scenario {
  readonly file: string;
  readonly durationS: number;
  readonly seed: number;
  readonly sloMs: number;
  readonly mode: 'aggregate' | 'exact';
  readonly traffic: Traffic;
  readonly inputTokens: TokenSpec;
  readonly outputTokens: TokenSpec;
  /** Every pod's engine (src/sim/hardware.ts). */
  readonly engine: EngineSpec;
  /** One pod in `oneIn` is `factor`× slower, always. */
  readonly slowPods: { readonly oneIn: number; readonly factor: number } | null;
  /** One pod in `oneIn` is `factor`× slower for `busyS` of every `periodS` (a noisy neighbour). */
  readonly noisyPods: { readonly oneIn: number; readonly factor: number; readonly periodS: number; readonly busyS: number } | null;
  /** Cold start = image pull + model load, each uniform in its range. */
  readonly coldStart: ColdStart;
  readonly balancers: number;
  /** Envoy's stats flush interval: how often the scaler gets a sample. */
  readonly flushS: number;
  /** In-flight requests per pod that KPA-like and HPA-like runs aim for, and that `fixed: peak` sizes by. */
  readonly targetPerPod: number;
  readonly runs: readonly RunSpec[];
  /** Traffic classes; empty: every request is alike (the scenario's tokens and SLO). */
  readonly classes: readonly TrafficClass[];
  /** The service whose routes, timeout and playbooks the data plane applies; null: none (no playbooks). */
  readonly service: SimulatedService | null;
}

const seconds = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const r = parseDuration(v);
  if (!r.ok) ctx.addIssue({ code: 'custom', message: r.error });
  return r.ok ? r.value / 1000 : 0;
});
const range = z.tuple([seconds, seconds]).refine(([lo, hi]) => lo <= hi, 'the first bound must not be above the second');
const positive = z.number().positive();
const coldStartSchema = z.strictObject({ node: range.default([0, 0]), imagePull: range, modelLoad: range, warmup: range.default([0, 0]) });
const coldStartOf = (c: z.infer<typeof coldStartSchema>): ColdStart => ({ nodeS: c.node, pullS: c.imagePull, loadS: c.modelLoad, warmupS: c.warmup });
const tokens = z.strictObject({ mean: positive, spread: z.number().min(0).lt(1).default(0.5) });
const scaling = z.union([
  z.literal('kpa'), z.literal('hpa'), z.literal('oracle'),
  z.strictObject({ fixed: z.union([z.number().int().positive(), z.literal('peak')]) }),
  z.strictObject({ policy: z.string().min(1) }),
  z.strictObject({ exactRate: z.strictObject({ headroom: z.number().min(0) }) }),
]);
const engineSchema = z.strictObject({
  preset: z.string().optional(),
  model: z.union([z.string(), z.strictObject({ params: z.number(), layers: z.number().int(), hidden: z.number().int(), kvHeads: z.number().int(), headDim: z.number().int() })]).optional(),
  gpu: z.union([z.string(), z.strictObject({ memoryGB: z.number(), bandwidthTBps: z.number(), tflopsBf16: z.number(), tflopsFp8: z.number().optional() })]).optional(),
  gpus: z.number().int().optional(),
  weights: z.enum(['bf16', 'fp8']).optional(),
  kvCache: z.enum(['bf16', 'fp8']).optional(),
  bandwidthEfficiency: z.number().optional(),
  computeEfficiency: z.number().optional(),
  parallelEfficiency: z.number().optional(),
  stepOverheadMs: z.number().optional(),
  maxNumSeqs: z.number().int().optional(),
  maxBatchedTokens: z.number().int().optional(),
  gpuMemoryUtilization: z.number().optional(),
});

/** Where checkEngineSpec's fields are written in a scenario's `fleet.engine`. */
const ENGINE_FIELD: Record<string, string> = { memoryBytes: 'memoryGB', bandwidth: 'bandwidthTBps', flopsBf16: 'tflopsBf16', flopsFp8: 'tflopsFp8' };

/** The engine a scenario's `fleet.engine` describes: a preset by name, or a preset (default {@link DEFAULT_PRESET}) with changes. */
function engineOf(e: string | z.infer<typeof engineSchema>, at: (string | number)[] = ['fleet', 'engine']): Result<EngineSpec, Problem[]> {
  if (typeof e === 'string') {
    const spec = ENGINE_PRESETS[e];
    return spec ? ok(spec) : err([{ path: at, message: `no engine preset "${e}"; the presets are ${Object.keys(ENGINE_PRESETS).join(', ')}` }]);
  }
  const unknown: Problem[] = [];
  const known = (table: Record<string, unknown>, name: string | undefined, key: string, what: string) => {
    if (name !== undefined && !(name in table)) unknown.push({ path: [...at, key], message: `no ${what} "${name}"; known: ${Object.keys(table).join(', ')}` });
  };
  known(ENGINE_PRESETS, e.preset, 'preset', 'engine preset');
  known(MODELS, typeof e.model === 'string' ? e.model : undefined, 'model', 'model');
  known(GPUS, typeof e.gpu === 'string' ? e.gpu : undefined, 'gpu', 'GPU');
  if (unknown.length > 0) return err(unknown);
  const base = ENGINE_PRESETS[e.preset ?? DEFAULT_PRESET]!;
  const model: ModelSpec = e.model === undefined ? base.model : typeof e.model === 'string' ? MODELS[e.model]! : { name: 'custom', source: 'the scenario', ...e.model };
  const gpu: GpuSpec = e.gpu === undefined ? base.gpu : typeof e.gpu === 'string' ? GPUS[e.gpu]!
    : { name: 'custom', source: 'the scenario', memoryBytes: e.gpu.memoryGB * 1e9, bandwidth: e.gpu.bandwidthTBps * 1e12, flopsBf16: e.gpu.tflopsBf16 * 1e12, flopsFp8: e.gpu.tflopsFp8 === undefined ? null : e.gpu.tflopsFp8 * 1e12 };
  const { preset: _preset, model: _model, gpu: _gpu, ...rest } = e;
  const changed = Object.keys(rest).length > 0 || e.model !== undefined || e.gpu !== undefined;
  const spec: EngineSpec = { ...base, ...rest, model, gpu, name: changed ? `${base.name} (changed)` : base.name };
  const problems = checkEngineSpec(spec).map((p) => ({ path: [...at, ...p.path.map((x) => ENGINE_FIELD[x] ?? x)], message: p.message }));
  return problems.length > 0 ? err(problems) : ok(spec);
}

const schema = z.strictObject({
  duration: seconds,
  seed: z.number().int().min(0).default(1),
  slo: seconds.default(1),
  mode: z.enum(['aggregate', 'exact']).default('aggregate'),
  traffic: z.strictObject({
    pattern: z.strictObject({
      peakRps: positive,
      troughRatio: z.number().min(0).max(1).default(0.3),
      peakAt: seconds.default(14 * 3600),
      bursts: z.array(z.strictObject({ at: seconds, factor: z.number().gt(1).default(2), rise: seconds.default(60), hold: seconds.default(600) })).default([]),
    }).optional(),
    constant: z.strictObject({ rps: positive.optional(), load: positive.optional() }).optional(),
    trace: z.union([z.string().min(1), z.strictObject({ file: z.string().min(1), rateScale: positive.optional(), peakRps: positive.optional(), shift: seconds.default(300) })]).optional(),
    inputTokens: tokens.default({ mean: 50, spread: 0.5 }),
    outputTokens: tokens.default({ mean: 50, spread: 0.5 }),
  }),
  fleet: z.strictObject({
    engine: z.union([z.string(), engineSchema]).default(DEFAULT_PRESET),
    slowPods: z.strictObject({ oneIn: z.number().int().positive(), factor: z.number().gt(1) }).optional(),
    noisyNeighbours: z.strictObject({ oneIn: z.number().int().positive(), factor: z.number().gt(1), period: seconds, busy: seconds }).optional(),
    coldStart: coldStartSchema.default({ node: [0, 0], imagePull: [20, 40], modelLoad: [40, 80], warmup: [0, 0] }),
    targetPerPod: positive.optional(),
  }).prefault({}),
  balancers: z.strictObject({ count: z.number().int().positive().default(1) }).default({ count: 1 }),
  scaling: z.strictObject({ flushInterval: seconds.default(1) }).default({ flushInterval: 1 }),
  classes: z.array(z.strictObject({ name: z.string().min(1).max(40), share: z.number().gt(0).max(1), route: z.string().min(1).optional(), slo: seconds.optional(), inputTokens: tokens.optional(), outputTokens: tokens.optional() })).min(1).optional(),
  service: z.strictObject({
    endpoints: z.string().min(1),
    name: z.string().min(1),
    shedRetries: z.number().int().min(0).max(10).default(1),
    fallbackFleet: z.strictObject({ engine: z.union([z.string(), engineSchema]).default(DEFAULT_PRESET), replicas: z.number().int().positive() }).optional(),
  }).optional(),
  runs: z.array(z.strictObject({ name: z.string().min(1).max(40), balancer: z.enum(['least-request', 'round-robin', 'random']).default('least-request'), scaling, mode: z.enum(['normal', 'surge', 'emergency']).optional(), coldStart: coldStartSchema.optional(), weights: z.enum(['equal', 'load']).default('equal') })).min(1),
});

function problemsOf(e: z.ZodError): Problem[] {
  return e.issues.map((i) => ({
    path: i.path.map((x) => (typeof x === 'symbol' ? String(x) : x)),
    message: i.code === 'unrecognized_keys' ? `unknown key${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `"${k}"`).join(', ')}` : i.message,
  }));
}

/** A file's text, or why it cannot be read, as `file: cannot read: reason`. */
function readText(file: string): Result<string, string[]> {
  try {
    return ok(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    return err([`${file}: cannot read: ${e instanceof Error ? e.message : String(e)}`]);
  }
}

/**
 * Reads a scenario file (YAML; examples/simulate/ has commented ones). Problems come back as
 * `file:line:column: path: reason`; a trace or scaling policy it names is read too, relative to the scenario,
 * with its own problems as `file:line: reason`. Any problem means no scenario: nothing is simulated on bad data.
 */
export function loadScenario(file: string): Result<Scenario, string[]> {
  const text = readText(file);
  if (!text.ok) return text;
  const doc = parseLocated(text.value, file);
  if (!doc.ok) return doc;
  const parsed = schema.safeParse(doc.value.value);
  if (!parsed.success) return err(problemsOf(parsed.error).map(doc.value.describe));
  const s = parsed.data;
  const problems: Problem[] = [];
  const out: string[] = [];
  const t = s.traffic;
  const kinds = (['pattern', 'constant', 'trace'] as const).filter((k) => t[k] !== undefined);
  if (kinds.length !== 1) problems.push({ path: ['traffic'], message: `give exactly one of pattern, constant, trace (got ${kinds.length === 0 ? 'none' : kinds.join(', ')})` });
  if (t.constant && (t.constant.rps === undefined) === (t.constant.load === undefined)) problems.push({ path: ['traffic', 'constant'], message: 'give exactly one of rps, load (a fraction of the fleet\'s capacity)' });
  if (s.duration <= 0) problems.push({ path: ['duration'], message: 'must be above zero' });
  if (s.slo <= 0) problems.push({ path: ['slo'], message: 'must be above zero' });
  if (s.scaling.flushInterval <= 0) problems.push({ path: ['scaling', 'flushInterval'], message: 'must be above zero' });
  const noisy = s.fleet.noisyNeighbours;
  if (noisy && (noisy.period <= 0 || noisy.busy <= 0 || noisy.busy > noisy.period)) problems.push({ path: ['fleet', 'noisyNeighbours', 'busy'], message: 'busy must be above zero and at most period' });
  const names = new Set<string>();
  s.runs.forEach((r, i) => {
    if (names.has(r.name)) problems.push({ path: ['runs', i, 'name'], message: `"${r.name}" names another run too` });
    names.add(r.name);
  });
  const engine = engineOf(s.fleet.engine);
  if (!engine.ok) problems.push(...engine.error);
  s.runs.forEach((r, i) => {
    if (r.mode !== undefined && !(typeof r.scaling === 'object' && 'policy' in r.scaling)) problems.push({ path: ['runs', i, 'mode'], message: 'only a policy run has modes to force' });
    if (r.weights === 'load' && s.mode !== 'exact') problems.push({ path: ['runs', i, 'weights'], message: 'load-aware weights run in exact mode only (the aggregate mode has no per-Envoy counts to weigh)' });
    if (r.weights === 'load' && r.balancer !== 'least-request') problems.push({ path: ['runs', i, 'weights'], message: 'load-aware weights are for the least-request balancer' });
  });
  const classes = s.classes ?? [];
  if (classes.length > 0) {
    const sum = classes.reduce((n, c) => n + c.share, 0);
    if (Math.abs(sum - 1) > 1e-9) problems.push({ path: ['classes'], message: `the shares add up to ${+(sum * 100).toFixed(4)}%, not 100%` });
    const seen = new Set<string>();
    classes.forEach((c, i) => {
      if (seen.has(c.name)) problems.push({ path: ['classes', i, 'name'], message: `"${c.name}" names another class too` });
      seen.add(c.name);
      if (c.route !== undefined && !s.service) problems.push({ path: ['classes', i, 'route'], message: 'a route names one of the service\'s routes: give service: { endpoints, name }' });
    });
  }
  if (s.mode === 'exact' && (classes.length > 0 || s.service)) problems.push({ path: ['mode'], message: 'traffic classes and playbooks run in aggregate mode only' });
  if (s.mode === 'exact' && s.runs.some((r) => r.scaling === 'oracle')) problems.push({ path: ['mode'], message: 'the oracle runs in aggregate mode only (it has no requests of its own to route)' });
  if (s.mode === 'exact' && s.runs.some((r) => typeof r.scaling === 'object' && 'exactRate' in r.scaling)) problems.push({ path: ['mode'], message: 'exactRate runs in aggregate mode only (it is sized from the rate itself)' });
  if (problems.length > 0) return err(problems.map(doc.value.describe));

  const dir = path.dirname(file);
  let traffic: Traffic | undefined;
  if (t.pattern) traffic = { kind: 'pattern', peakRps: t.pattern.peakRps, troughRatio: t.pattern.troughRatio, peakAtS: t.pattern.peakAt, bursts: t.pattern.bursts.map((b) => ({ atS: b.at, factor: b.factor, riseS: b.rise, holdS: b.hold })) };
  else if (t.constant) traffic = { kind: 'constant', rps: t.constant.rps ?? null, load: t.constant.load ?? null };
  else {
    const tr = typeof t.trace === 'string' ? { file: t.trace, rateScale: undefined, peakRps: undefined, shift: 300 } : t.trace!;
    if (tr.rateScale !== undefined && tr.peakRps !== undefined) return err([doc.value.describe({ path: ['traffic', 'trace'], message: 'give at most one of rateScale, peakRps' })]);
    if (tr.shift <= 0) return err([doc.value.describe({ path: ['traffic', 'trace', 'shift'], message: 'must be above zero' })]);
    const traceFile = path.resolve(dir, tr.file);
    const traceText = readText(traceFile);
    if (!traceText.ok) return traceText;
    const arrivals = parseTrace(traceText.value, traceFile);
    if (!arrivals.ok) return arrivals;
    traffic = { kind: 'trace', file: traceFile, arrivals: arrivals.value, scale: tr.peakRps !== undefined ? tr.peakRps / busiestMinuteRate(arrivals.value) : tr.rateScale ?? 1, shiftS: tr.shift };
  }
  let service: SimulatedService | null = null;
  if (s.service) {
    const sv = s.service;
    const endpointsFile = path.resolve(dir, sv.endpoints);
    const model = loadEndpointsFile(endpointsFile);
    if (!model.ok) return err(model.error.map((e) => `${e} (the endpoints file of service)`));
    const found = model.value.services.find((x) => x.name === sv.name);
    const where: Problem[] = [];
    if (!found) where.push({ path: ['service', 'name'], message: `${endpointsFile} serves no "${sv.name}"; it serves ${model.value.services.map((x) => x.name).join(', ')}` });
    else {
      const routes = new Set(found.routes.flatMap((r) => (r.name ? [r.name] : [])));
      classes.forEach((c, i) => {
        if (c.route !== undefined && !routes.has(c.route)) where.push({ path: ['classes', i, 'route'], message: `"${sv.name}" has no route "${c.route}"; its named routes: ${[...routes].join(', ') || 'none'}` });
      });
      const fallbacks = [...new Set(Object.values(found.settings.playbooks).flatMap((pb) => (pb?.fallback ? [pb.fallback] : [])))];
      if (fallbacks.length > 0 && !sv.fallbackFleet) where.push({ path: ['service'], message: `a playbook falls back to "${fallbacks.join('", "')}": give fallbackFleet: { engine, replicas } for it` });
      if (fallbacks.length === 0 && sv.fallbackFleet) where.push({ path: ['service', 'fallbackFleet'], message: `no playbook of "${sv.name}" falls back to another service` });
      let fallback: SimulatedService['fallback'] = null;
      if (sv.fallbackFleet && fallbacks.length > 0) {
        const fe = engineOf(sv.fallbackFleet.engine, ['service', 'fallbackFleet', 'engine']);
        if (!fe.ok) where.push(...fe.error);
        else fallback = { name: fallbacks[0]!, engine: fe.value, replicas: sv.fallbackFleet.replicas };
      }
      service = { file: endpointsFile, service: found, shedRetries: sv.shedRetries, fallback };
    }
    if (where.length > 0) return err(where.map(doc.value.describe));
  }
  const runs: RunSpec[] = [];
  let target: number | undefined = s.fleet.targetPerPod;
  for (const [i, r] of s.runs.entries()) {
    const sc = r.scaling;
    const coldStart = r.coldStart ? coldStartOf(r.coldStart) : null;
    if (sc === 'kpa' || sc === 'hpa' || sc === 'oracle') runs.push({ name: r.name, balancer: r.balancer, scaling: { kind: sc }, forcedMode: null, coldStart, weights: r.weights });
    else if ('fixed' in sc) runs.push({ name: r.name, balancer: r.balancer, scaling: { kind: 'fixed', replicas: sc.fixed }, forcedMode: null, coldStart, weights: r.weights });
    else if ('exactRate' in sc) runs.push({ name: r.name, balancer: r.balancer, scaling: { kind: 'exact-rate', headroom: sc.exactRate.headroom }, forcedMode: null, coldStart, weights: r.weights });
    else {
      const policy = loadSimPolicy(sc.policy === 'default' ? null : path.resolve(dir, sc.policy));
      if (!policy.ok) {
        out.push(...policy.error.map((e) => `${e} (scaling policy of runs[${i}])`));
        continue;
      }
      target ??= policy.value.modes.normal.targetPerPod;
      const forcedMode = r.mode ?? null;
      runs.push({ name: r.name, balancer: r.balancer, scaling: { kind: 'policy', source: sc.policy, policy: forcedMode ? { ...policy.value, forcedMode } : policy.value }, forcedMode, coldStart, weights: r.weights });
    }
  }
  if (out.length > 0) return err(out);
  return ok({
    file, durationS: s.duration, seed: s.seed, sloMs: s.slo * 1000, mode: s.mode, traffic: traffic!,
    inputTokens: t.inputTokens, outputTokens: t.outputTokens,
    engine: (engine as { value: EngineSpec }).value,
    slowPods: s.fleet.slowPods ?? null,
    noisyPods: noisy ? { oneIn: noisy.oneIn, factor: noisy.factor, periodS: noisy.period, busyS: noisy.busy } : null,
    coldStart: coldStartOf(s.fleet.coldStart),
    balancers: s.balancers.count, flushS: s.scaling.flushInterval,
    targetPerPod: target ?? DEFAULT_POLICY.modes.normal.targetPerPod,
    runs,
    classes: classes.map((c) => ({ name: c.name, share: c.share, route: c.route ?? null, sloMs: (c.slo ?? s.slo) * 1000, inputTokens: c.inputTokens ?? t.inputTokens, outputTokens: c.outputTokens ?? t.outputTokens })),
    service,
  });
}

/** The mean rate (requests/s) of a trace's busiest minute. */
function busiestMinuteRate(arrivals: readonly Arrival[]): number {
  const perMinute = new Map<number, number>();
  for (const a of arrivals) perMinute.set(Math.floor(a.t / 60), (perMinute.get(Math.floor(a.t / 60)) ?? 0) + 1);
  return Math.max(...perMinute.values()) / 60;
}

/**
 * A scaling policy file for a simulation: the policy of its only service, or its `defaults` when it lists
 * none (`null`: the built-in default). Problems as `file:line:column: path: reason`.
 */
export function loadSimPolicy(file: string | null): Result<ScalingPolicy, string[]> {
  if (file === null) return ok(DEFAULT_POLICY);
  const text = readText(file);
  if (!text.ok) return text;
  const doc = parseLocated(text.value, file);
  if (!doc.ok) return doc;
  // A policy of defaults alone is read as the policy of one placeholder service.
  const value = (doc.value.value ?? {}) as Record<string, unknown>;
  const read = readPolicy(JSON.stringify(value['services'] === undefined ? { ...value, services: { simulated: { deployment: 'simulated' } } } : value));
  if (!read.ok) return err(read.error.map(doc.value.describe));
  if (read.value.length !== 1) return err([`${file}:1:1: services: a simulation scales one service; this policy lists ${read.value.length}`]);
  return ok(read.value[0]!.policy);
}

/** Command-line changes to a scenario; each is checked where it is given. */
export interface ScenarioOverrides {
  readonly mode?: Scenario['mode'];
  readonly seed?: number;
  readonly durationS?: number;
  /** The pattern's peak, or a constant rate. */
  readonly peakRps?: number;
  readonly balancers?: number;
  /** The size of every fixed-fleet run. */
  readonly replicas?: number;
  /** Every pod's engine. */
  readonly engine?: EngineSpec;
  /** The p99 each minute must meet (ms), for the scenario and every class. */
  readonly sloMs?: number;
  /**
   * Every policy run's scaling policy (forced modes kept), and the target of the KPA-like and HPA-like runs (its
   * normal targetPerPod), so that all of them aim alike. `source` names it in the results.
   */
  readonly policy?: { readonly source: string; readonly policy: ScalingPolicy };
}

/** The scenario with `o` applied, or why `o` does not fit it. */
export function withOverrides(s: Scenario, o: ScenarioOverrides): Result<Scenario, string> {
  let traffic = s.traffic;
  if (o.peakRps !== undefined) {
    if (traffic.kind === 'trace') return err('--peak-rps: the scenario replays a trace, whose rate is its own');
    traffic = traffic.kind === 'pattern' ? { ...traffic, peakRps: o.peakRps } : { kind: 'constant', rps: o.peakRps, load: null };
  }
  if (o.mode === 'exact' && s.runs.some((r) => r.scaling.kind === 'oracle')) return err('--mode exact: the oracle runs in aggregate mode only');
  if (o.mode === 'exact' && s.runs.some((r) => r.scaling.kind === 'exact-rate')) return err('--mode exact: exactRate runs in aggregate mode only');
  if (o.mode === 'exact' && (s.classes.length > 0 || s.service !== null)) return err('--mode exact: traffic classes and playbooks run in aggregate mode only');
  if (o.mode === 'aggregate' && s.runs.some((r) => r.weights === 'load')) return err('--mode aggregate: load-aware weights run in exact mode only');
  if (o.replicas !== undefined && !s.runs.some((r) => r.scaling.kind === 'fixed')) return err('--replicas: the scenario has no fixed-fleet run');
  if (o.policy !== undefined && !s.runs.some((r) => r.scaling.kind === 'policy')) return err('--policy: the scenario has no policy run');
  const { policy } = o;
  const runs = s.runs.map((r) => {
    if (o.replicas !== undefined && r.scaling.kind === 'fixed') return { ...r, scaling: { kind: 'fixed' as const, replicas: o.replicas } };
    if (policy !== undefined && r.scaling.kind === 'policy') return { ...r, scaling: { kind: 'policy' as const, source: policy.source, policy: r.forcedMode ? { ...policy.policy, forcedMode: r.forcedMode } : policy.policy } };
    return r;
  });
  return ok({
    ...s, traffic,
    ...(o.mode !== undefined && { mode: o.mode }),
    ...(o.seed !== undefined && { seed: o.seed }),
    ...(o.durationS !== undefined && { durationS: o.durationS }),
    ...(o.balancers !== undefined && { balancers: o.balancers }),
    ...(o.engine !== undefined && { engine: o.engine }),
    ...(o.sloMs !== undefined && { sloMs: o.sloMs, classes: s.classes.map((c) => ({ ...c, sloMs: o.sloMs! })) }),
    ...(policy !== undefined && { targetPerPod: policy.policy.modes.normal.targetPerPod }),
    runs,
  });
}
