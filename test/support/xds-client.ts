import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ENVOY_PROTO_INCLUDES } from '../../src/xds/protos.js';
import { decodeToObject } from '../../src/xds/protos.js';
import { messageName } from '../../src/xds/resources.js';

/** A decoded resource from a response. */
export interface SeenResource {
  name: string;
  version?: string;
  typeUrl: string;
  value: Record<string, any>;
}

/** A response as the recording client saw it (SotW and Delta in one shape). */
export interface SeenResponse {
  versionInfo: string;
  typeUrl: string;
  nonce: string;
  resources: SeenResource[];
  removed: string[];
  controlPlane: string;
  at: number;
}

const SERVICES = {
  ads: ['envoy.service.discovery.v3.AggregatedDiscoveryService', 'StreamAggregatedResources', 'DeltaAggregatedResources'],
  cds: ['envoy.service.cluster.v3.ClusterDiscoveryService', 'StreamClusters', 'DeltaClusters'],
  eds: ['envoy.service.endpoint.v3.EndpointDiscoveryService', 'StreamEndpoints', 'DeltaEndpoints'],
  lds: ['envoy.service.listener.v3.ListenerDiscoveryService', 'StreamListeners', 'DeltaListeners'],
  rds: ['envoy.service.route.v3.RouteDiscoveryService', 'StreamRoutes', 'DeltaRoutes'],
} as const;

let pkg: grpc.GrpcObject | undefined;
function loadPackage(): grpc.GrpcObject {
  // Loaded with @grpc/proto-loader, independent of the server's hand-written response framing.
  pkg ??= grpc.loadPackageDefinition(
    protoLoader.loadSync(
      ['envoy/service/discovery/v3/ads.proto', 'envoy/service/cluster/v3/cds.proto', 'envoy/service/endpoint/v3/eds.proto', 'envoy/service/listener/v3/lds.proto', 'envoy/service/route/v3/rds.proto'],
      { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [...ENVOY_PROTO_INCLUDES] },
    ),
  );
  return pkg;
}

function lookup(path: string): any {
  return path.split('.').reduce((o: any, k) => o[k], loadPackage());
}

/**
 * A raw xDS test client on grpc-js that records every response and sends exactly the requests a test asks
 * for (no automatic ACKs), so tests can play Envoy's part in every protocol corner.
 */
export class RecordingXdsClient {
  readonly responses: SeenResponse[] = [];
  readonly status: Promise<grpc.StatusObject>;
  private readonly call: grpc.ClientDuplexStream<any, any>;
  private readonly client: grpc.Client;
  private waiters: (() => void)[] = [];

  constructor(address: string, readonly variant: 'sotw' | 'delta', service: keyof typeof SERVICES = 'ads', credentials = grpc.credentials.createInsecure(), options: grpc.ChannelOptions = {}) {
    const [svc, sotw, delta] = SERVICES[service];
    const Ctor = lookup(svc);
    this.client = new Ctor(address, credentials, options);
    this.call = (this.client as any)[variant === 'sotw' ? sotw : delta]();
    this.call.on('data', (msg: any) => {
      this.responses.push(variant === 'sotw' ? fromSotw(msg) : fromDelta(msg));
      this.wake();
    });
    this.status = new Promise((resolve) => {
      this.call.on('status', (s: grpc.StatusObject) => {
        resolve(s);
        this.wake();
      });
    });
    this.call.on('error', () => {});
  }

  /** Sends one request as given. */
  send(req: Record<string, unknown>): void {
    this.call.write(req);
  }

  /** Waits until `pred` holds for some response at or after index `from`, and returns it. */
  async next(pred: (r: SeenResponse) => boolean = () => true, from = 0, timeoutMs = 5000): Promise<SeenResponse> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.responses.slice(from).find(pred);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching response within ${timeoutMs} ms; saw ${this.responses.length}: ${JSON.stringify(this.responses.map((r) => [r.typeUrl.split('.').pop(), r.resources.map((x) => x.name), r.removed]))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Half-closes and closes the channel. */
  close(): void {
    this.call.end();
    this.client.close();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

function decodeAny(any: { type_url: string; value: Buffer }): Record<string, any> {
  return decodeToObject(messageName(any.type_url), any.value);
}

function fromSotw(m: any): SeenResponse {
  return {
    versionInfo: m.version_info,
    typeUrl: m.type_url,
    nonce: m.nonce,
    controlPlane: m.control_plane?.identifier ?? '',
    removed: [],
    at: Date.now(),
    resources: m.resources.map((a: any) => {
      const value = decodeAny(a);
      return { name: (value['name'] ?? value['cluster_name']) as string, typeUrl: a.type_url, value };
    }),
  };
}

function fromDelta(m: any): SeenResponse {
  return {
    versionInfo: m.system_version_info,
    typeUrl: m.type_url,
    nonce: m.nonce,
    controlPlane: m.control_plane?.identifier ?? '',
    removed: m.removed_resources,
    at: Date.now(),
    resources: m.resources.map((r: any) => ({ name: r.name, version: r.version, typeUrl: r.resource.type_url, value: decodeAny(r.resource) })),
  };
}
