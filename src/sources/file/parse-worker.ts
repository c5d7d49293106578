/**
 * Worker thread of {@link parseEndpointsFileOffThread}: parses one endpoints file and exits. The model goes
 * back in slices of services on the given port, then one summary message on the parent port, so the main
 * thread takes the slices in at its own pace instead of deserializing the whole model in one go.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { parseEndpointsFile } from './endpoints-file.js';

/** Services per message: small enough to deserialize in a few milliseconds. */
const SERVICES_PER_MESSAGE = 50;

const { text, file, port } = workerData as { text: string; file: string; port: MessagePort };
const parsed = parseEndpointsFile(text, file);
if (parsed.ok) {
  const { services } = parsed.value;
  let slices = 0;
  for (let i = 0; i < services.length; i += SERVICES_PER_MESSAGE, slices++) port.postMessage(services.slice(i, i + SERVICES_PER_MESSAGE));
  parentPort!.postMessage({ ok: true, listener: parsed.value.listener, slices });
} else {
  parentPort!.postMessage({ ok: false, error: parsed.error });
}
port.close();
