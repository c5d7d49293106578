import type { Model } from '../../src/model/model.js';
import { readModel } from '../../src/model/validate.js';

/** A raw endpoint as the endpoints file writes it. */
export function ep(address: string, port: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { address, port, ...extra };
}

/** A raw service as the endpoints file writes it. */
export function svc(name: string, endpoints: Record<string, unknown>[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, endpoints, ...extra };
}

/** Validates raw services into a model; throws with every problem if they are invalid (a test bug). */
export function model(services: Record<string, unknown>[], listener?: Record<string, unknown>): Model {
  const m = readModel({ services, ...(listener && { listener }) });
  if (!m.ok) throw new Error(m.error.map((p) => `${p.path.join('.')}: ${p.message}`).join('\n'));
  return m.value;
}
