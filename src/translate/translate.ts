import type { Model } from '../model/model.js';
import { clusters } from './cluster.js';
import type { ResourceSpec } from './common.js';
import { endpoints } from './endpoint.js';
import { listeners } from './listener.js';
import { routes } from './route.js';

/** Every Envoy resource for a model: a pure function of its input, in a stable order. */
export function translate(model: Model): ResourceSpec[] {
  return [
    ...clusters(model.services),
    ...endpoints(model.services),
    ...listeners(model.listener, model.services),
    ...routes(model.listener, model.services),
  ];
}
