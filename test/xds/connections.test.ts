import net from 'node:net';
import { expect } from 'chai';
import { TypeUrl } from '../../src/xds/resources.js';
import { ep, model, svc } from '../support/builders.js';
import { eventually, startHarness } from '../support/harness.js';

describe('connections that never complete the HTTP/2 handshake', () => {
  it('are closed after the handshake timeout (silent, or after part of the preface), while real streams go on', async () => {
    const h = await startHarness(model([svc('a', [ep('10.0.0.1', 80)])]), { handshakeTimeoutMs: 300 });
    const sockets: net.Socket[] = [];
    try {
      const client = h.client('sotw');
      client.send({ node: { id: 'real' }, type_url: TypeUrl.Cluster });
      await client.next();
      const port = Number(h.address.split(':')[1]);
      let closed = 0;
      for (let i = 0; i < 20; i++) {
        const s = net.connect(port, '127.0.0.1', () => {
          if (i % 2) s.write('PRI * HTTP'); // 10 bytes of the 24-byte preface
        });
        s.on('error', () => undefined);
        s.on('close', () => closed++);
        sockets.push(s);
      }
      await eventually(() => closed === 20, 'every half-open connection closed', 5_000);
      expect(await h.metrics.value('inferplane_connections_closed_total', { reason: 'handshake-timeout' })).to.equal(20);
      // The real stream, older than the timeout, is untouched and still served.
      await h.publish(model([svc('a', [ep('10.0.0.1', 80)]), svc('b', [])]));
      expect((await client.next((r) => r.resources.length === 2, 1)).resources.map((r) => r.name)).to.deep.equal(['a/http', 'b/http']);
    } finally {
      for (const s of sockets) s.destroy();
      await h.stop();
    }
  });
});
