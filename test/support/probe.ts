import { TypeUrl } from '../../src/xds/resources.js';
import type { RecordingXdsClient, SeenResponse } from './xds-client.js';

let seq = 0;

/**
 * Returns every response the server sent since index `from`, up to a probe: a first request on `type` (one
 * the test otherwise leaves alone) naming a resource that does not exist, which the server must answer. The
 * stream is ordered, so anything the server was going to send in reaction to earlier requests arrives before
 * the probe's answer: "nothing was resent" is checked without sleeping.
 */
export async function sentBeforeProbe(c: RecordingXdsClient, from: number, type: string = TypeUrl.Route): Promise<SeenResponse[]> {
  const name = `probe-${++seq}`;
  if (c.variant === 'sotw') c.send({ type_url: type, resource_names: [name] });
  else c.send({ type_url: type, resource_names_subscribe: [name] });
  const isProbe = (r: SeenResponse) => r.typeUrl === type && (c.variant === 'sotw' || r.removed.includes(name));
  const answer = await c.next(isProbe, from);
  return c.responses.slice(from, c.responses.indexOf(answer));
}
