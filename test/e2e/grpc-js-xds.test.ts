import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { createMemoryLogger } from '../../src/observability/log.js';
import { serve, type Running } from '../../src/serve.js';
import { DEFAULT_LIMITS } from '../../src/xds/stream.js';
import { echo, echoMany, EchoClient, startEchoBackend, type EchoBackend } from '../support/echo.js';
import { eventually } from '../support/harness.js';
import { ROOT } from '../support/processes.js';

grpcXds.register();

/**
 * End to end with an independent xDS client: @grpc/grpc-js-xds resolves xds:///echo through inferplane
 * (LDS → RDS → CDS → EDS over ADS) and calls real gRPC echo backends on loopback. The endpoints file is edited
 * on disk and picked up by the real file watcher.
 */
describe('end to end: @grpc/grpc-js-xds client, inferplane serve, echo backends', () => {
  let dir: string;
  let file: string;
  let running: Running;
  let backends: EchoBackend[];
  let client: grpc.Client;
  const log = createMemoryLogger();

  const writeFile = (bs: EchoBackend[]) => {
    const doc = { services: [{ name: 'echo', ports: [{ name: 'grpc', protocol: 'http2' }], endpoints: bs.map((b, i) => ({ address: '127.0.0.1', port: b.port, zone: `zone-${i % 2}` })) }] };
    const tmp = `${file}.tmp`;
    fs.writeFileSync(tmp, stringify(doc));
    fs.renameSync(tmp, file); // atomic replace, as editors and ConfigMap mounts do
  };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-e2e-'));
    file = path.join(dir, 'endpoints.yaml');
    backends = await Promise.all(['a', 'b', 'c', 'd'].map(startEchoBackend));
    writeFile(backends.slice(0, 3));
    running = await serve({ discovery: { kind: 'file', path: file }, xdsAddress: '127.0.0.1:0', adminHost: '127.0.0.1', adminPort: 0, limits: DEFAULT_LIMITS, maxMessageBytes: 1 << 20, log });
    // The bootstrap the README points at, with only the server's address changed.
    const bootstrap = JSON.parse(fs.readFileSync(path.join(ROOT, 'examples/grpc-bootstrap.json'), 'utf8'));
    bootstrap.xds_servers[0].server_uri = `127.0.0.1:${running.xdsPort}`;
    bootstrap.node.id = 'grpc-e2e';
    client = new EchoClient('xds:///echo', grpc.credentials.createInsecure(), { 'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config': JSON.stringify(bootstrap) });
  });

  after(async () => {
    client?.close();
    await running?.stop(1000);
    await Promise.all(backends.map((b) => b.stop()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const callMany = (n: number) => echoMany(client, n);

  it('receives the whole chain, ACKs every type (no NACK) and spreads calls over every backend', async () => {
    const seen = await callMany(60);
    expect(Object.keys(seen).sort()).to.deep.equal(['a', 'b', 'c']);
    const [node] = running.xds.nodes();
    expect(node!.userAgent).to.match(/^gRPC Node/);
    for (const t of ['lds', 'rds', 'cds', 'eds']) {
      expect(node!.types[t]!.ackedVersion, t).to.be.a('string').and.equal(node!.types[t]!.sentVersion);
      expect(node!.types[t]!.lastNack, t).to.equal(undefined);
    }
  });

  it('follows edits of the file: a removed backend stops getting calls, an added one starts', async () => {
    writeFile([backends[0]!, backends[1]!, backends[3]!]);
    await eventually(async () => {
      const seen = await callMany(20);
      return !seen['c'] && !!seen['d'];
    }, 'calls reach d and no longer c');
    const seen = await callMany(60);
    expect(Object.keys(seen).sort()).to.deep.equal(['a', 'b', 'd']);
    expect(running.xds.nodes()[0]!.types['eds']!.lastNack).to.equal(undefined);
  });

  it('loses no call while a backend is removed from the file (calls run throughout)', async () => {
    let failures = 0;
    let ok = 0;
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        try {
          await echo(client);
          ok++;
        } catch {
          failures++;
        }
      }
    })();
    await eventually(() => ok > 50, 'calls flowing');
    const removed = backends[3]!;
    const edsBefore = running.xds.nodes()[0]!.types['eds']!.sentVersion;
    writeFile([backends[0]!, backends[1]!]);
    await eventually(() => running.xds.nodes()[0]!.types['eds']!.ackedVersion === running.xds.nodes()[0]!.types['eds']!.sentVersion && (running.xds.nodes()[0]!.types['eds']!.sentVersion ?? '') !== edsBefore, 'the client ACKed the new assignment');
    // Out of rotation: the backend can now go away for good without any call failing.
    await removed.stop();
    const okAtRemoval = ok;
    await eventually(() => ok > okAtRemoval + 50, 'calls keep flowing');
    stop = true;
    await loop;
    expect(failures).to.equal(0);
  });

  it('keeps serving the last good state when the file turns invalid', async () => {
    fs.writeFileSync(file, 'services:\n  - name: echo\n    endpoints:\n      - { address: 127.0.0.1, port: 99999 }\n');
    await eventually(() => log.lines.some((l) => String(l.fields['problem'] ?? '').includes('endpoints[0].port: 99999 is out of range')), 'the problem is logged with its field');
    const problem = String(log.lines.find((l) => String(l.fields['problem'] ?? '').includes('99999'))!.fields['problem']);
    expect(problem).to.match(/endpoints\.yaml:4:\d+: services\[0\]\.endpoints\[0\]\.port: 99999 is out of range/);
    const seen = await callMany(20);
    expect(Object.keys(seen).sort()).to.deep.equal(['a', 'b']);
  });

  it('keeps calling its last endpoints when the service vanishes from the file by mistake (ignore_resource_deletion), and follows it back', async () => {
    writeFile([backends[0]!, backends[1]!]);
    await eventually(async () => Object.keys(await callMany(10)).length === 2, 'both backends answering');
    fs.writeFileSync(file, 'services: []\n'); // every listener, route, cluster and assignment withdrawn
    await eventually(() => {
      const lds = running.xds.nodes()[0]?.types['lds'];
      return lds !== undefined && lds.ackedVersion === lds.sentVersion && running.xds.nodes()[0]!.types['cds']!.ackedVersion === running.xds.nodes()[0]!.types['cds']!.sentVersion
        && log.lines.some((l) => l.msg === 'snapshot published' && l.fields['services'] === 0);
    }, 'the empty configuration served and ACKed');
    const seen = await callMany(20); // without the server feature, every call fails: the resources do not exist
    expect(Object.keys(seen).sort()).to.deep.equal(['a', 'b']);
    writeFile([backends[0]!]);
    await eventually(async () => Object.keys(await callMany(10)).join() === 'a', 'the service back, with one backend');
  });
});
