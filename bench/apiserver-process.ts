/**
 * Runs the test stand-in Kubernetes API server in its own process for the churn benchmark, so that its CPU is
 * not counted as inferplane's. IPC: {cmd:'apply', objs, id} → applies them, replies {cmd:'applied', id, at}.
 */
import { startApiServer } from '../test/support/apiserver.js';

const api = await startApiServer();
process.send!({ cmd: 'url', url: api.url });
process.on('message', (m: { cmd: string; objs?: object[]; id?: number }) => {
  if (m.cmd === 'apply') {
    for (const o of m.objs!) api.apply(o);
    process.send!({ cmd: 'applied', id: m.id, at: performance.timeOrigin + performance.now() });
  } else if (m.cmd === 'close') {
    void api.close().then(() => process.exit(0));
  }
});
