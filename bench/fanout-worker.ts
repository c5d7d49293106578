/**
 * One worker process of the fan-out, churn and soak benchmarks: opens `count` ADS streams (SotW, or Delta with
 * `delta`), each on its own connection, 50 at a time or, with `storm`, all at once; subscribes like an Envoy
 * (CDS wildcard, EDS by name), ACKs every response (or, with `nack`, rejects every one, as a fleet that cannot
 * take the config would), and reports when each stream receives the EDS version the coordinator waits for
 * (`await`), its next EDS response whatever the version (`arm`: any server), or every EDS version received
 * while recording (wall-clock ms, comparable across processes). A stream that fails before its first response
 * is counted as lost. `drop` closes every stream and its connection and keeps the process.
 */
import * as grpc from '@grpc/grpc-js';
import { messageType } from '../src/xds/protos.js';
import { TypeUrl } from '../src/xds/resources.js';

type Msg =
  | { cmd: 'open'; address: string; count: number; base: number; edsNames: string[]; nack?: boolean; delta?: boolean; storm?: boolean }
  | { cmd: 'arm' }
  | { cmd: 'drop' }
  | { cmd: 'await'; version: string }
  | { cmd: 'record' }
  | { cmd: 'report' }
  | { cmd: 'close' };

const Request = messageType('envoy.service.discovery.v3.DiscoveryRequest');
const DeltaRequest = messageType('envoy.service.discovery.v3.DeltaDiscoveryRequest');
const now = () => performance.timeOrigin + performance.now();

interface Envelope {
  version_info: string;
  type_url: string;
  nonce: string;
}

/**
 * Reads only version_info (1), type_url (4) and nonce (5) of a DiscoveryResponse, skipping the resources (the
 * same field numbers carry system_version_info, type_url and nonce in a DeltaDiscoveryResponse):
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

/** A bidirectional ADS method sending `type` requests and taking responses as raw envelopes. */
const adsMethod = (name: string, type: typeof Request) => ({
  path: `/envoy.service.discovery.v3.AggregatedDiscoveryService/${name}`,
  requestStream: true,
  responseStream: true,
  requestSerialize: (o: object) => Buffer.from(type.encode(type.fromObject(o)).finish()),
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: readEnvelope,
});
const ADS = { Stream: adsMethod('StreamAggregatedResources', Request), Delta: adsMethod('DeltaAggregatedResources', DeltaRequest) };
const AdsClient = grpc.makeGenericClientConstructor(ADS, 'Ads');

interface S {
  edsVersion: string;
  /** Armed: the time of the next EDS response is wanted. */
  armed: boolean;
  /** With recording on: every EDS version received, with its wall-clock time. */
  log: [string, number][];
}
let recording = false;

const streams: S[] = [];
const clients: grpc.Client[] = [];
const calls: grpc.ClientDuplexStream<object, Envelope>[] = [];
let waiting: { version: string; times: number[]; left: number } | undefined;
let arming: { times: number[]; left: number } | undefined;
let lost: string[] = [];

function open(address: string, index: number, edsNames: string[], nack: boolean, delta: boolean): Promise<void> {
  return new Promise((resolve) => {
    // A channel option unique per client gives each stream its own connection, as each Envoy has.
    const client = new AdsClient(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'inferplane.bench.id': index });
    clients.push(client);
    const call = (client as any)[delta ? 'Delta' : 'Stream']();
    calls.push(call);
    const s: S = { edsVersion: '', armed: false, log: [] };
    let ready = false;
    call.on('data', (r: Envelope) => {
      const eds = r.type_url === TypeUrl.Endpoint;
      if (delta) call.write(nack ? { type_url: r.type_url, response_nonce: r.nonce, error_detail: { code: 3, message: 'rejected by the benchmark' } } : { type_url: r.type_url, response_nonce: r.nonce });
      else if (nack) call.write({ type_url: r.type_url, version_info: '', response_nonce: r.nonce, resource_names: eds ? edsNames : [], error_detail: { code: 3, message: 'rejected by the benchmark' } });
      else call.write({ type_url: r.type_url, version_info: r.version_info, response_nonce: r.nonce, resource_names: eds ? edsNames : [] });
      if (!eds) return;
      s.edsVersion = r.version_info;
      if (recording) s.log.push([r.version_info, now()]);
      if (!ready) {
        ready = true;
        streams.push(s);
        resolve();
      }
      if (waiting && r.version_info === waiting.version) {
        waiting.times.push(now());
        if (--waiting.left === 0) process.send!({ cmd: 'times', times: waiting.times });
      }
      if (arming && s.armed) {
        s.armed = false;
        arming.times.push(now());
        if (--arming.left === 0) process.send!({ cmd: 'times', times: arming.times });
      }
    });
    call.on('error', (e: grpc.ServiceError) => {
      if (e.code === grpc.status.CANCELLED) return; // dropped by the coordinator
      if (ready) process.send!({ cmd: 'error', error: e.message });
      else {
        lost.push(e.message);
        resolve();
      }
    });
    if (delta) {
      call.write({ node: { id: `bench-${index}`, cluster: 'bench' }, type_url: TypeUrl.Cluster });
      call.write({ type_url: TypeUrl.Endpoint, resource_names_subscribe: edsNames });
    } else {
      call.write({ node: { id: `bench-${index}`, cluster: 'bench' }, type_url: TypeUrl.Cluster });
      call.write({ type_url: TypeUrl.Endpoint, resource_names: edsNames });
    }
  });
}

process.on('message', async (m: Msg) => {
  if (m.cmd === 'open') {
    lost = [];
    const batch = m.storm ? m.count : 50;
    for (let i = 0; i < m.count; i += batch) {
      await Promise.all(Array.from({ length: Math.min(batch, m.count - i) }, (_, j) => open(m.address, m.base + i + j, m.edsNames, m.nack ?? false, m.delta ?? false)));
    }
    process.send!({ cmd: 'opened', lost: lost.length, sample: [...new Set(lost)].slice(0, 3) });
  } else if (m.cmd === 'arm') {
    for (const s of streams) s.armed = true;
    arming = { times: [], left: streams.length };
    process.send!({ cmd: 'armed' });
    if (arming.left === 0) process.send!({ cmd: 'times', times: [] });
  } else if (m.cmd === 'await') {
    const already = streams.filter((s) => s.edsVersion === m.version).length;
    waiting = { version: m.version, times: Array(already).fill(0), left: streams.length - already };
    if (waiting.left === 0) process.send!({ cmd: 'times', times: waiting.times });
  } else if (m.cmd === 'record') {
    recording = true;
    process.send!({ cmd: 'recording' });
  } else if (m.cmd === 'drop') {
    // Closing a client leaves its calls running: cancel them, as an Envoy going away resets its stream.
    for (const c of calls) c.cancel();
    for (const c of clients) c.close();
    calls.length = 0;
    clients.length = 0;
    streams.length = 0;
    waiting = undefined;
    arming = undefined;
    process.send!({ cmd: 'dropped' });
  } else if (m.cmd === 'report') {
    recording = false;
    process.send!({ cmd: 'report', logs: streams.map((s) => s.log) });
  } else {
    for (const c of clients) c.close();
    process.exit(0);
  }
});
