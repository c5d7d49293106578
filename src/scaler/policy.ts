import { parseDocument } from 'yaml';
import { yamlToJs } from '../config/yaml.js';
import { z } from 'zod';
import { formatPath, parseDuration, type Problem } from '../model/validate.js';
import { err, ok, type Result } from '../result.js';
import { DEFAULT_POLICY, MODES, type Mode, type ModeSettings, type ScalingPolicy } from './decide.js';

/** The ConfigMap data key (and the file format of `--policy FILE`) holding the scaling policy, as YAML. */
export const POLICY_KEY = 'policy.yaml';

const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const r = parseDuration(v);
  if (!r.ok) ctx.addIssue({ code: 'custom', message: r.error });
  return r.ok ? r.value : 0;
});
const positiveInt = z.number().int().positive();
const mode = z.strictObject({
  targetPerPod: z.number().positive(),
  maxUpPods: positiveInt,
  maxUpPercent: z.number().positive(),
  maxDownPercent: z.number().min(0).max(100),
}).partial();
const settings = z.strictObject({
  // Scale to zero is not offered: with no pods Envoy has no upstream and counts no requests to it, so nothing
  // would ever ask for the first pod again.
  minReplicas: z.number().int().min(1, 'must be at least 1: with no pods there is no load to see, so nothing would scale up again'),
  maxReplicas: positiveInt,
  stableWindow: duration,
  panicWindow: duration,
  panicThreshold: z.number().gt(1),
  tolerance: z.number().min(0).lt(1),
  scaleDownTolerance: z.number().min(0).lt(1),
  scaleDownWindow: duration,
  maxSampleAge: duration,
  minEnvoys: positiveInt,
  modes: z.strictObject({ normal: mode, surge: mode, emergency: mode }).partial(),
  modeThresholds: z.strictObject({ surge: z.number().positive(), emergency: z.number().positive() }).partial(),
  mode: z.enum(['auto', ...MODES]),
  externalChangeCoolOff: duration,
  queueSignal: z.strictObject({ waitingPerPod: z.number().positive(), kvCacheUsage: z.number().gt(0).max(1) }).partial(),
  scaleDownIdlestFirst: z.boolean(),
}).partial();
const LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const NAME = new RegExp(`^(${LABEL}/)?${LABEL}$`);
const document = z.strictObject({
  defaults: settings.optional(),
  services: z.record(
    z.string().regex(NAME, 'service keys are the served names: namespace/name (Kubernetes) or name'),
    settings.extend({ deployment: z.string().regex(NAME, 'a Deployment: name (in the service\'s namespace) or namespace/name') }),
  ),
});

/** What to scale for one service, and how. */
export interface ServiceScaling {
  /** The service as inferplane serves it (`namespace/name` from Kubernetes; its clusters are `<service>/<port>`). */
  readonly service: string;
  /** The Deployment to resize: by default in the service's namespace (`default` for names without one). */
  readonly deployment: { readonly namespace: string; readonly name: string };
  readonly policy: ScalingPolicy;
}

type Settings = z.infer<typeof settings>;

function merge(base: ScalingPolicy, s: Settings | undefined): ScalingPolicy {
  if (!s) return base;
  // Setting normal's target alone moves the others' in proportion: surge and emergency exist to keep more
  // headroom, and a left-over default looser than normal's would scale the wrong way under pressure.
  const normalTarget = s.modes?.normal?.targetPerPod;
  const scale = normalTarget === undefined ? 1 : normalTarget / base.modes.normal.targetPerPod;
  const modes = Object.fromEntries(MODES.map((m) => [m, {
    ...base.modes[m],
    ...(m !== 'normal' && { targetPerPod: base.modes[m].targetPerPod * scale }),
    ...s.modes?.[m],
  } as ModeSettings])) as Record<Mode, ModeSettings>;
  return {
    minReplicas: s.minReplicas ?? base.minReplicas,
    maxReplicas: s.maxReplicas ?? base.maxReplicas,
    stableWindowMs: s.stableWindow ?? base.stableWindowMs,
    panicWindowMs: s.panicWindow ?? base.panicWindowMs,
    panicThreshold: s.panicThreshold ?? base.panicThreshold,
    tolerance: s.tolerance ?? base.tolerance,
    scaleDownTolerance: s.scaleDownTolerance ?? base.scaleDownTolerance,
    scaleDownWindowMs: s.scaleDownWindow ?? base.scaleDownWindowMs,
    maxSampleAgeMs: s.maxSampleAge ?? base.maxSampleAgeMs,
    minEnvoys: s.minEnvoys ?? base.minEnvoys,
    modes,
    modeThresholds: { ...base.modeThresholds, ...s.modeThresholds },
    forcedMode: s.mode === undefined ? base.forcedMode : s.mode === 'auto' ? null : s.mode,
    externalCoolOffMs: s.externalChangeCoolOff ?? base.externalCoolOffMs,
    queueSignal: s.queueSignal === undefined ? base.queueSignal : { waitingPerPod: s.queueSignal.waitingPerPod ?? null, kvCacheUsage: s.queueSignal.kvCacheUsage ?? null },
    scaleDownIdlestFirst: s.scaleDownIdlestFirst ?? base.scaleDownIdlestFirst,
  };
}

/** Rules that span fields: each problem names where it applies. */
function crossCheck(p: ScalingPolicy, at: (string | number)[]): Problem[] {
  const out: Problem[] = [];
  if (p.minReplicas > p.maxReplicas) out.push({ path: [...at, 'minReplicas'], message: `minReplicas ${p.minReplicas} is above maxReplicas ${p.maxReplicas}` });
  if (p.panicWindowMs <= 0 || p.panicWindowMs >= p.stableWindowMs) out.push({ path: [...at, 'panicWindow'], message: 'panicWindow must be above zero and shorter than stableWindow' });
  if (p.modeThresholds.emergency <= p.modeThresholds.surge) out.push({ path: [...at, 'modeThresholds', 'emergency'], message: 'the emergency threshold must be above the surge threshold' });
  if (p.maxSampleAgeMs <= 0) out.push({ path: [...at, 'maxSampleAge'], message: 'must be above zero' });
  if (p.queueSignal && p.queueSignal.waitingPerPod === null && p.queueSignal.kvCacheUsage === null) out.push({ path: [...at, 'queueSignal'], message: 'give waitingPerPod, kvCacheUsage or both (or leave queueSignal out)' });
  for (const m of ['surge', 'emergency'] as const) {
    const t = p.modes[m].targetPerPod;
    if (t > p.modes.normal.targetPerPod) out.push({ path: [...at, 'modes', m, 'targetPerPod'], message: `${t} is looser than normal's ${p.modes.normal.targetPerPod}: under more pressure the scaler would want fewer pods` });
  }
  return out;
}

/**
 * Reads a scaling policy document (YAML; the shape is documented in examples/scaling-policy.yaml): defaults
 * plus one entry per service, each merged over the defaults, over {@link DEFAULT_POLICY}. Wrong types,
 * unknown keys (rejected, never ignored), non-positive targets, min above max and the like are all reported
 * with the key they concern; a document with any problem yields no policy at all, so the caller keeps its
 * last good one.
 */
export function readPolicy(text: string): Result<ServiceScaling[], Problem[]> {
  const doc = parseDocument(text, { uniqueKeys: true, logLevel: 'error' });
  if (doc.errors.length > 0) return err(doc.errors.map((e) => ({ path: [], message: `YAML: ${e.message.split('\n')[0]}` })));
  const plain = yamlToJs(doc);
  if (!plain.ok) return err([{ path: [], message: plain.error }]);
  const parsed = document.safeParse(plain.value ?? {});
  if (!parsed.success) {
    return err(parsed.error.issues.map((i) => ({
      path: i.path.map((x) => (typeof x === 'symbol' ? String(x) : x)),
      message: i.code === 'unrecognized_keys'
        ? `unknown key${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `"${k}"`).join(', ')}`
        : i.code === 'invalid_key' ? (i.issues[0]?.message ?? i.message) : i.message,
    })));
  }
  const defaults = merge(DEFAULT_POLICY, parsed.data.defaults);
  const problems = crossCheck(defaults, ['defaults']);
  const out: ServiceScaling[] = [];
  for (const [service, s] of Object.entries(parsed.data.services).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const policy = merge(defaults, s);
    problems.push(...crossCheck(policy, ['services', service]));
    const [namespace, name] = s.deployment.includes('/') ? s.deployment.split('/') : [service.includes('/') ? service.split('/')[0] : 'default', s.deployment];
    out.push({ service, deployment: { namespace: namespace!, name: name! }, policy });
  }
  return problems.length > 0 ? err(problems) : ok(out);
}

/** Renders problems as `path: message` lines, for logs and Events. */
export function describeProblems(problems: readonly Problem[]): string[] {
  return problems.map((p) => `${formatPath(p.path)}: ${p.message}`);
}
