import type { Model } from '../model/model.js';
import { runSteps, type Steps } from '../steps.js';
import { clusters } from './cluster.js';
import type { ResourceSpec } from './common.js';
import { endpoints } from './endpoint.js';
import { apiListeners, envoyListener } from './listener.js';
import { apiRoutes, envoyRoutesSteps } from './route.js';

/** Services translated between two yields of {@link translateSteps}: about a millisecond of work. */
const SERVICES_PER_STEP = 20;

/** Every Envoy resource for a model: a pure function of its input, in a stable order. */
export function translate(model: Model): ResourceSpec[] {
  return runSteps(translateSteps(model));
}

/**
 * {@link translate} as steps (see src/steps.ts), a slice of services at a time; the result is the same:
 * clusters, assignments, listeners (the Envoy one first), route tables (the Envoy one first).
 */
export function* translateSteps(model: Model): Steps<ResourceSpec[]> {
  const byType: ResourceSpec[][] = [[], [], [], []];
  for (let i = 0; i < model.services.length; i += SERVICES_PER_STEP) {
    const slice = model.services.slice(i, i + SERVICES_PER_STEP);
    [clusters(slice), endpoints(slice), apiListeners(slice), apiRoutes(slice)].forEach((specs, t) => {
      for (const spec of specs) byType[t]!.push(spec);
    });
    yield;
  }
  const [cs, es, ls, rs] = byType as [ResourceSpec[], ResourceSpec[], ResourceSpec[], ResourceSpec[]];
  const table = yield* envoyRoutesSteps(model.listener, model.services);
  return [...cs, ...es, envoyListener(model.listener), ...ls, table, ...rs];
}
