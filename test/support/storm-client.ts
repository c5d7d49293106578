/**
 * A connection storm, as a fleet reconnecting after a control-plane restart makes one: on {cmd:'go'}, opens
 * `count` HTTP/2 connections to `address` at once (no pacing), each carrying one ADS SotW request for clusters,
 * and reports how many got a response and how many failed (with a sample of the errors). Runs in its own
 * process so that the server's process can be busy while the connections arrive.
 */
import http2 from 'node:http2';
import { messageType } from '../../src/xds/protos.js';
import { TypeUrl } from '../../src/xds/resources.js';

const [address, countArg] = process.argv.slice(2);
const count = Number(countArg);
const Request = messageType('envoy.service.discovery.v3.DiscoveryRequest');

function frame(i: number): Buffer {
  const body = Buffer.from(Request.encode(Request.fromObject({ node: { id: `storm-${i}` }, type_url: TypeUrl.Cluster })).finish());
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

process.on('message', (m: { cmd: string }) => {
  if (m.cmd !== 'go') return;
  let ok = 0;
  const errors: string[] = [];
  const sessions: http2.ClientHttp2Session[] = [];
  const done = () => {
    if (ok + errors.length < count) return;
    for (const s of sessions) s.destroy();
    process.send!({ cmd: 'result', ok, failed: errors.length, sample: [...new Set(errors)].slice(0, 5) });
  };
  for (let i = 0; i < count; i++) {
    let settled = false;
    const settle = (error?: string) => {
      if (settled) return;
      settled = true;
      if (error === undefined) ok++;
      else errors.push(error);
      done();
    };
    const session = http2.connect(`http://${address}`);
    sessions.push(session);
    session.on('error', (e) => settle(e.message));
    const req = session.request({ ':method': 'POST', ':path': '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources', 'content-type': 'application/grpc', te: 'trailers' });
    req.on('error', (e) => settle(e.message));
    req.on('data', () => settle());
    req.on('close', () => settle(`stream closed before a response (${req.rstCode})`));
    req.write(frame(i));
  }
});
process.send!({ cmd: 'ready' });
