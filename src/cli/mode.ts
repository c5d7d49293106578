/**
 * `inferplane mode SERVICE MODE`: the operator's switch for a service's mode (its scaling targets and its
 * data-plane playbook), through the admin endpoint of the replica that acts as the scaler.
 */

import { StatusError } from './status.js';

/** Posts the forced mode; resolves to the line to print, or throws a {@link StatusError} saying why not. */
export async function forceMode(base: string, service: string, mode: string, forText: string | undefined, timeoutMs = 5000): Promise<string> {
  const url = `${base.replace(/\/+$/, '')}/scaler/mode`;
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ service, mode, ...(forText !== undefined && { for: forText }) }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    const c = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new StatusError(`cannot reach inferplane's admin endpoint at ${base} (${c?.code ?? c?.message ?? (e instanceof Error ? e.message : String(e))}); is "inferplane serve --scaler" running there? (--admin URL)`);
  }
  const text = await res.text();
  let body: { error?: string; state?: { mode: string; reason?: string; until: string | null } };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw new StatusError(`POST ${url} answered ${res.status} with something that is not JSON: not an inferplane admin endpoint?`);
  }
  if (res.status !== 200) throw new StatusError(`${body.error ?? text.slice(0, 200)} (HTTP ${res.status})`);
  const s = body.state;
  // A service back in auto with no mode of its own has no reason to show.
  if (mode === 'auto') return `${service}: back to auto; now ${s?.mode ?? 'normal'}${s?.reason && s.reason !== 'operator' ? ` (${s.reason})` : ''}`;
  return `${service}: ${s?.mode ?? mode} (forced${s?.until ? ` until ${s.until}` : ' until set back to auto'})`;
}
