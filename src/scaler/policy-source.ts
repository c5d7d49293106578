import { createHash } from 'node:crypto';
import { watchTextFile } from '../config/watch-file.js';
import type { Logger } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import { describeProblems, POLICY_KEY, readPolicy, type ServiceScaling } from './policy.js';

// The ConfigMap source is in policy-configmap.ts, so that a scaler reading a file never loads the Kubernetes client.

/** Policy documents larger than this are refused (a ConfigMap holds at most 1 MiB). */
export const MAX_POLICY_BYTES = 1024 * 1024;

/** What the scaler shows about its policy. */
export interface PolicyStatus {
  /** `file:<path>` or `configmap:<namespace>/<name>`. */
  readonly source: string;
  /** The version in force (content hash for files, resourceVersion for ConfigMaps); null before any good one. */
  readonly version: string | null;
  readonly loadedAt: string | null;
  /** The latest rejected version and why, while no newer good one replaced it. */
  readonly rejected: { readonly version: string; readonly at: string; readonly problems: readonly string[] } | null;
}

/** A watched scaling policy: the last good document stays in force until a valid one replaces it. */
export interface PolicySource {
  start(): void;
  stop(): Promise<void>;
  /** The policy in force; undefined until a first valid document was read. */
  current(): readonly ServiceScaling[] | undefined;
  status(): PolicyStatus;
}

/** What every policy source is given. */
export interface Common {
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Called with each newly accepted policy. */
  readonly onPolicy?: (services: readonly ServiceScaling[]) => void;
  /**
   * `shadow`: a candidate policy whose decisions are only recorded (`--shadow-policy`); its metrics and log
   * lines say so, apart from the active policy's. Default `active`.
   */
  readonly role?: 'active' | 'shadow';
}

/**
 * The shared part of a policy source: validation, last-good keeping, logs and metrics. `offer` returns the
 * problems of a rejected text (the source may report them further), null when it was accepted.
 */
export function createPolicyHolder(source: string, o: Common) {
  let current: readonly ServiceScaling[] | undefined;
  let version: string | null = null;
  let loadedAt: string | null = null;
  let rejected: PolicyStatus['rejected'] = null;
  let latestValid = true;
  const shadow = o.role === 'shadow';
  const name = shadow ? 'shadow scaling policy' : 'scaling policy';
  const valid = () => (latestValid && current ? 1 : 0);
  const rejections = shadow
    ? o.metrics.counter('inferplane_scaler_shadow_policy_rejections_total', 'Shadow scaling policy versions rejected as invalid')
    : o.metrics.counter('inferplane_scaler_policy_rejections_total', 'Scaling policy versions rejected as invalid');
  if (shadow) o.metrics.gauge('inferplane_scaler_shadow_policy_valid', '1 when the latest shadow scaling policy seen was valid (0: an older good one is in force, or none)', [], valid);
  else o.metrics.gauge('inferplane_scaler_policy_valid', '1 when the latest scaling policy seen was valid (0: an older good one is in force, or none)', [], valid);
  return {
    /** Returns the problems when the text was rejected. */
    offer(text: string | undefined, v: string): string[] | null {
      const problems = text === undefined
        ? [`the data key "${POLICY_KEY}" is missing`]
        : text.length > MAX_POLICY_BYTES ? [`${text.length} bytes is over the ${MAX_POLICY_BYTES}-byte limit`] : null;
      const parsed = problems ? null : readPolicy(text!);
      if (problems || !parsed!.ok) {
        const lines = problems ?? describeProblems(parsed!.ok ? [] : parsed!.error);
        latestValid = false;
        rejected = { version: v, at: new Date().toISOString(), problems: lines };
        rejections.inc();
        o.log.error(version === null ? (shadow ? 'invalid shadow scaling policy; no shadow decisions until a valid one is read' : 'invalid scaling policy; nothing is scaled until a valid one is read') : `invalid ${name}; the last good one stays in force`, { source, version: v, inForce: version, problems: lines });
        return lines;
      }
      current = parsed!.value;
      version = v;
      loadedAt = new Date().toISOString();
      rejected = null;
      latestValid = true;
      o.log.info(`${name} loaded`, { source, version: v, services: current.map((s) => `${s.service} -> ${s.deployment.namespace}/${s.deployment.name}`) });
      o.onPolicy?.(current);
      return null;
    },
    current: () => current,
    status: (): PolicyStatus => ({ source, version, loadedAt, rejected }),
  };
}

/** The policy from a file (`--policy FILE`), re-read on every change. */
export function filePolicySource(file: string, o: Common): PolicySource {
  const holder = createPolicyHolder(`file:${file}`, o);
  let watch: { close(): void } | undefined;
  return {
    start() {
      watch ??= watchTextFile(file, {
        log: o.log,
        what: o.role === 'shadow' ? 'shadow scaling policy' : 'scaling policy',
        maxBytes: MAX_POLICY_BYTES,
        onText: (text) => void holder.offer(text, createHash('sha256').update(text).digest('hex').slice(0, 12)),
      });
    },
    async stop() {
      watch?.close();
    },
    current: holder.current,
    status: holder.status,
  };
}
