/**
 * One worker process of the fan-out, churn and soak benchmarks: opens `count` ADS SotW streams, each on its own
 * connection, subscribes like an Envoy (CDS wildcard, EDS by name), ACKs every response (or, with `nack`,
 * rejects every one, as a fleet that cannot take the config would), and reports when each stream receives the
 * EDS version the coordinator waits for, or every EDS version received while recording (wall-clock ms,
 * comparable across processes). `drop` closes every stream and its connection and keeps the process.
 */
import * as grpc from '@grpc/grpc-js';
import { messageType } from '../src/xds/protos.js';
import { TypeUrl } from '../src/xds/resources.js';

type Msg =
  | { cmd: 'open'; address: string; count: number; base: number; edsNames: string[]; nack?: boolean }
  | { cmd: 'drop' }
  | { cmd: 'await'; version: string }
  | { cmd: 'record' }
  | { cmd: 'report' }
  | { cmd: 'close' };

const Request = messageType('envoy.service.discovery.v3.DiscoveryRequest');
const now = () => performance.timeOrigin + performance.now();

interface Envelope {
  version_info: string;
  type_url: string;
  nonce: string;
}

/**
 * Reads only version_info (1), type_url (4) and nonce (5) of a DiscoveryResponse, skipping the resources:
 * the load generator shares the server's two cores, so it must cost as little as a client can.
 */
function readEnvelope(b: Buffer): Envelope {
  const out: Envelope = { version_info: '', type_url: '', nonce: '' };
  let i = 0;
  const varint = () => {
    let n = 0;
    let shift = 1;
    for (;;) {
      const byte = b[i++]!;
      n += (byte & 0x7f) * shift;
      if (byte < 0x80) return n;
      shift *= 128;
    }
  };
  while (i < b.length) {
    const tag = varint();
    if ((tag & 7) !== 2) throw new Error(`unexpected wire type in DiscoveryResponse field ${tag >> 3}`);
    const len = varint();
    const field = tag >> 3;
    if (field === 1) out.version_info = b.toString('utf8', i, i + len);
    else if (field === 4) out.type_url = b.toString('utf8', i, i + len);
    else if (field === 5) out.nonce = b.toString('utf8', i, i + len);
    i += len;
  }
  return out;
}

const ADS = {
  Stream: {
    path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
    requestStream: true,
    responseStream: true,
    requestSerialize: (o: object) => Buffer.from(Request.encode(Request.fromObject(o)).finish()),
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: readEnvelope,
  },
};
const AdsClient = grpc.makeGenericClientConstructor(ADS, 'Ads');

interface S {
  edsVersion: string;
  /** With recording on: every EDS version received, with its wall-clock time. */
  log: [string, number][];
}
let recording = false;

const streams: S[] = [];
const clients: grpc.Client[] = [];
let waiting: { version: string; times: number[]; left: number } | undefined;

function open(address: string, index: number, edsNames: string[], nack: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    // A channel option unique per client gives each stream its own connection, as each Envoy has.
    const client = new AdsClient(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'inferplane.bench.id': index });
    clients.push(client);
    const call = (client as any).Stream();
    const s: S = { edsVersion: '', log: [] };
    streams.push(s);
    let ready = false;
    call.on('data', (r: Envelope) => {
      const names = r.type_url === TypeUrl.Endpoint ? edsNames : [];
      if (nack) call.write({ type_url: r.type_url, version_info: '', response_nonce: r.nonce, resource_names: names, error_detail: { code: 3, message: 'rejected by the soak benchmark' } });
      else call.write({ type_url: r.type_url, version_info: r.version_info, response_nonce: r.nonce, resource_names: names });
      if (r.type_url !== TypeUrl.Endpoint) return;
      s.edsVersion = r.version_info;
      if (recording) s.log.push([r.version_info, now()]);
      if (!ready) {
        ready = true;
        resolve();
      }
      if (waiting && r.version_info === waiting.version) {
        waiting.times.push(now());
        if (--waiting.left === 0) process.send!({ cmd: 'times', times: waiting.times });
      }
    });
    call.on('error', (e: Error) => (ready ? process.send!({ cmd: 'error', error: e.message }) : reject(e)));
    call.write({ node: { id: `bench-${index}`, cluster: 'bench' }, type_url: TypeUrl.Cluster });
    call.write({ type_url: TypeUrl.Endpoint, resource_names: edsNames });
  });
}

process.on('message', async (m: Msg) => {
  if (m.cmd === 'open') {
    for (let i = 0; i < m.count; i += 50) {
      await Promise.all(Array.from({ length: Math.min(50, m.count - i) }, (_, j) => open(m.address, m.base + i + j, m.edsNames, m.nack ?? false)));
    }
    process.send!({ cmd: 'opened' });
  } else if (m.cmd === 'await') {
    const already = streams.filter((s) => s.edsVersion === m.version).length;
    waiting = { version: m.version, times: Array(already).fill(0), left: streams.length - already };
    if (waiting.left === 0) process.send!({ cmd: 'times', times: waiting.times });
  } else if (m.cmd === 'record') {
    recording = true;
    process.send!({ cmd: 'recording' });
  } else if (m.cmd === 'drop') {
    for (const c of clients) c.close();
    clients.length = 0;
    streams.length = 0;
    waiting = undefined;
    process.send!({ cmd: 'dropped' });
  } else if (m.cmd === 'report') {
    recording = false;
    process.send!({ cmd: 'report', logs: streams.map((s) => s.log) });
  } else {
    for (const c of clients) c.close();
    process.exit(0);
  }
});
