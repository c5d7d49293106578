/**
 * `inferplane status`: what the admin endpoints say, as tables an operator reads at a glance (the sync
 * column is istioctl proxy-status's idea), as JSON for scripts, or, for one service, why the scaler holds or
 * moves it, in words.
 */

import type { Reason } from '../scaler/decide.js';
import { syncState } from '../xds/sync-state.js';
import type { ServiceWeights } from '../balance/controller.js';

/** What to show. */
export type StatusView = { readonly kind: 'nodes' | 'services' | 'scaler' } | { readonly kind: 'explain'; readonly service: string };

/** A failure to tell the user in one line (exit code 1). */
export class StatusError extends Error {}

type Fetch = (path: string) => Promise<unknown>;

/** GETs JSON from the admin endpoint at `base`; every failure becomes a {@link StatusError} naming the URL. */
export function adminFetcher(base: string, timeoutMs = 5000): Fetch {
  const root = base.replace(/\/+$/, '');
  return async (path) => {
    const url = `${root}${path}`;
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    } catch (e) {
      const c = (e as { cause?: { code?: string; message?: string; errors?: { code?: string }[] } }).cause;
      const cause = c?.code ?? c?.errors?.[0]?.code ?? c?.message ?? (e instanceof Error ? e.message : String(e));
      throw new StatusError(`cannot reach inferplane's admin endpoint at ${root} (${cause}); is "inferplane serve" running there? (--admin URL)`);
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new StatusError(`GET ${url} answered ${res.status} with something that is not JSON: not an inferplane admin endpoint?`);
    }
    if (res.status === 404 && path.startsWith('/status/scaler')) throw new StatusError(`the scaler is not running in the process at ${root} (start it with "inferplane serve --scaler")`);
    if (res.status !== 200) throw new StatusError(`GET ${url} answered ${res.status}: ${(body as { error?: string }).error ?? text.slice(0, 200)}`);
    return body;
  };
}

/** Renders rows as left-aligned columns separated by two spaces. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

interface TypeStatus {
  subscribedCount?: number;
  sentVersion?: string;
  ackedVersion?: string;
  pendingNonce?: string;
  lastNack?: { version?: string; message?: string };
}

interface NodeStatus {
  nodeId: string;
  cluster: string;
  userAgent: string;
  service: string;
  variant: string;
  connectedSince: string;
  types: Record<string, TypeStatus | undefined>;
}

/** One type's state on one stream, as the table shows it: `-` when the type is not subscribed. */
export function syncCell(t: TypeStatus | undefined): string {
  return t ? syncState(t).toUpperCase().replace('-', ' ') : '-';
}

const TYPES = ['cds', 'lds', 'eds', 'rds'] as const;

function expect<T>(body: unknown, field: string, where: string): T {
  const v = (body as Record<string, unknown> | null)?.[field];
  if (v === undefined) throw new StatusError(`${where} has no "${field}": not an inferplane admin endpoint, or one of another version`);
  return v as T;
}

function age(since: string | number, now: number): string {
  const ms = now - (typeof since === 'number' ? since : Date.parse(since));
  if (!Number.isFinite(ms)) return '?';
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}

/** Why a scaler decision came out as it did, in words, from its reason and inputs. */
export function explainDecision(service: string, d: { action: string; replicas: number; reason: string; mode: string; inputs: Record<string, number | null> }): string {
  const i = d.inputs;
  const n = (v: number | null | undefined, digits = 1) => (v === null || v === undefined ? '?' : Number.isInteger(v) ? String(v) : v.toFixed(digits));
  const demand = `demand ${n(i['stableDemand'])} requests in flight (panic window ${n(i['panicDemand'])}), ${n(i['targetPerPod'])} per pod wanted: ${n(i['wanted'])} pods`;
  const at = `${service} (${d.mode} mode): ${d.action === 'hold' ? `holds at ${d.replicas}` : `${d.action === 'scale-up' ? 'scales up' : 'scales down'} from ${n(i['desired'])} to ${d.replicas}`} replicas`;
  // Every reason decide() gives has its sentence (the compiler checks); an unknown one, from a newer server, is named as is.
  const why: Record<Reason, string> = {
    'no-data': 'no Envoy has reported its in-flight requests for this service yet, and the scaler never acts on missing data',
    'stale-data': `the newest stats report is ${n(i['latestAgeMs'] === null || i['latestAgeMs'] === undefined ? null : i['latestAgeMs'] / 1000)} s old, older than the policy allows, and stale data is never read as idle`,
    'partial-data': `only ${n(i['envoys'])} Envoys reported, fewer than the policy's minimum`,
    'fewer-reporters': `fewer Envoys reported than before (${n(i['envoys'])} now), so lower demand may only be missing reports: no scale-down on it`,
    'below-min': 'the Deployment is below the policy\'s minReplicas',
    'above-max': 'the Deployment is above the policy\'s maxReplicas',
    'scale-up': demand,
    'panic-scale-up': `a surge: ${demand}; panic mode scales up at once and not down`,
    'capacity-on-the-way': `${n(i['desired'])} pods are wanted already and only ${n(i['ready'])} are ready: pods starting count as capacity on the way`,
    'within-tolerance': `${demand}, within the tolerance of the current count`,
    'panic-no-scale-down': `${demand}, but in panic mode it never scales down`,
    'scale-down-stabilizing': `${demand}, but a scale-down waits until the whole stabilisation window agrees`,
    'scale-down': `${demand}, and the whole stabilisation window agrees`,
    'at-max': `${demand}, capped at the policy's maxReplicas`,
    'at-min': `${demand}, held at the policy's minReplicas`,
    'external-change': 'someone else changed the Deployment\'s replicas just now; the scaler leaves it for a cool-off period',
    'queue-pressure': `the pods report ${n(i['queueWaiting'], 0)} requests waiting${i['kvCacheUsage'] === null || i['kvCacheUsage'] === undefined ? '' : ` and a KV cache ${Math.round(i['kvCacheUsage'] * 100)}% full`}, past the policy's queueSignal: a step of pods is added though ${demand}`,
  };
  return `${at}: ${(why as Record<string, string>)[d.reason] ?? d.reason}.`;
}

/** Produces the text (or JSON) for `view` from the admin endpoint behind `get`. */
export async function renderStatus(view: StatusView, get: Fetch, json: boolean, now = Date.now()): Promise<string> {
  switch (view.kind) {
    case 'nodes': {
      const body = await get('/status/nodes');
      const nodes = expect<NodeStatus[]>(body, 'nodes', '/status/nodes');
      if (json) return JSON.stringify(body, null, 2);
      if (nodes.length === 0) return 'no xDS streams are connected';
      const rows = nodes.map((s) => [s.nodeId, s.cluster || '-', `${s.service}/${s.variant}`, ...TYPES.map((t) => syncCell(s.types[t])), s.userAgent || '-', age(s.connectedSince, now)]);
      const out = rows.filter((r) => r.slice(3, 7).some((c) => c !== 'SYNCED' && c !== '-')).length;
      rows.sort((a, b) => Number(b.slice(3, 7).some((c) => c !== 'SYNCED' && c !== '-')) - Number(a.slice(3, 7).some((c) => c !== 'SYNCED' && c !== '-')) || a[0]!.localeCompare(b[0]!));
      const nacks = nodes.flatMap((s) => TYPES.flatMap((t) => (syncCell(s.types[t]) === 'NACKED' ? [`${s.nodeId} ${t.toUpperCase()}: ${s.types[t]!.lastNack!.message ?? ''}`] : [])));
      return [table([['NODE', 'CLUSTER', 'STREAM', 'CDS', 'LDS', 'EDS', 'RDS', 'AGENT', 'CONNECTED'], ...rows]), '', `${nodes.length} streams, ${out} not in sync`, ...nacks.map((m) => `NACK ${m}`)].join('\n');
    }
    case 'services': {
      const body = await get('/status/fleet');
      const services = expect<Record<string, { activeRequests: number; envoys: number; oldestReportAgeMs: number } | null>>(body, 'services', '/status/fleet');
      if (json) return JSON.stringify(body, null, 2);
      const names = Object.keys(services).sort();
      if (names.length === 0) return 'no services are served';
      return table([['SERVICE', 'IN FLIGHT', 'ENVOYS REPORTING', 'OLDEST REPORT'], ...names.map((s) => {
        const v = services[s];
        return v ? [s, String(v.activeRequests), String(v.envoys), age(now - v.oldestReportAgeMs, now)] : [s, '-', '0', 'no reports'];
      })]);
    }
    case 'scaler': {
      const body = await get('/status/scaler');
      type Decided = { action: string; replicas: number; reason: string; mode: string; at: string };
      const services = expect<Record<string, { deployment: string; current: number | null; ready: number | null; last?: Decided | null; shadow?: Decided | null }>>(body, 'services', '/status/scaler');
      if (json) return JSON.stringify(body, null, 2);
      const b = body as { role: string; dryRun: boolean; policy: { source: string; version: string | null; rejected: { error?: string } | null }; shadowPolicy?: { source: string; version: string | null } | null; modes?: Record<string, { mode: string; reason: string; until: string | null }> };
      const modes = b.modes ?? {};
      const modeCell = (name: string, last: Decided | null | undefined) => (modes[name] ? `${modes[name].mode} (${modes[name].reason}${modes[name].until ? ` until ${modes[name].until}` : ''})` : last?.mode ?? '-');
      const head = [`role ${b.role}${b.dryRun ? ' (dry run: decides, never writes)' : ''}; policy ${b.policy.source} version ${b.policy.version ?? '-'}`];
      if (b.policy.rejected) head.push(`last policy REJECTED: ${b.policy.rejected.error ?? JSON.stringify(b.policy.rejected)}`);
      const shadow = b.shadowPolicy ? [`shadow policy ${b.shadowPolicy.source} version ${b.shadowPolicy.version ?? '-'} (decides beside the active one, never applied)`] : [];
      const rows = Object.entries(services).sort(([a], [c]) => a.localeCompare(c)).map(([name, s]) => [
        name, s.deployment, String(s.current ?? '-'), String(s.ready ?? '-'), s.last ? `${s.last.action} → ${s.last.replicas}` : '-', s.last?.reason ?? '-', modeCell(name, s.last), s.last ? age(s.last.at, now) : '-',
        ...(b.shadowPolicy ? [s.shadow ? `${s.shadow.action} → ${s.shadow.replicas} (${s.shadow.reason})` : '-'] : []),
      ]);
      const header = ['SERVICE', 'DEPLOYMENT', 'CURRENT', 'READY', 'LAST DECISION', 'REASON', 'MODE', 'AGE', ...(b.shadowPolicy ? ['SHADOW (NOT APPLIED)'] : [])];
      const others = Object.keys(modes).filter((n) => !services[n]).sort().map((n) => `mode of ${n} (not scaled by the policy): ${modeCell(n, null)}`);
      return [...head, ...shadow, ...others, '', rows.length === 0 ? 'no services under the policy' : table([header, ...rows])].join('\n');
    }
    case 'explain': {
      // The scaler's last decision and the endpoints' load-aware weights, whichever this process has.
      const all = expect<Record<string, ServiceWeights>>(await get('/status/weights'), 'services', '/status/weights');
      const weighed = all[view.service];
      let scaled: { last?: Parameters<typeof explainDecision>[1] | null } | undefined;
      let known: string[] = [];
      try {
        const services = expect<Record<string, { last?: Parameters<typeof explainDecision>[1] | null }>>(await get(`/status/scaler?service=${encodeURIComponent(view.service)}&limit=1`), 'services', '/status/scaler');
        scaled = services[view.service];
        known = Object.keys(services);
      } catch (e) {
        if (!(e instanceof StatusError) || weighed === undefined) throw e;
      }
      if (!scaled && !weighed) throw new StatusError(`no service "${view.service}" under the scaler or with load-aware weights (they know: ${[...new Set([...known, ...Object.keys(all)])].sort().join(', ') || 'none'})`);
      if (json) return JSON.stringify({ ...(scaled && { scaler: scaled }), ...(weighed && { weights: weighed }) }, null, 2);
      const lines: string[] = [];
      if (scaled) lines.push(scaled.last ? explainDecision(view.service, scaled.last) : `${view.service}: no decision yet`);
      if (weighed) {
        lines.push(`${lines.length > 0 ? '\n' : ''}Load-aware weights of ${view.service} (updated ${age(weighed.updatedAt, now)} ago; the mean load ${weighed.meanLoad.toFixed(1)}):`);
        lines.push(table([['ENDPOINT', 'WEIGHT', 'LOAD', 'WHY'], ...weighed.endpoints.map((e) => [e.endpoint, String(e.weight), e.load === null ? 'unreadable' : String(e.load), e.why])]));
      }
      return lines.join('\n');
    }
  }
}
