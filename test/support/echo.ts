import * as grpc from '@grpc/grpc-js';

/** The one method of the echo backends: raw bytes in, the backend's name out. */
export const ECHO_SERVICE: grpc.ServiceDefinition = {
  Echo: {
    path: '/inferplane.test.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
    originalName: 'echo',
  },
};

/** A gRPC client class for {@link ECHO_SERVICE}. */
export const EchoClient = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'Echo');

/** A real gRPC server on loopback answering every call with its own name. */
export interface EchoBackend {
  readonly name: string;
  readonly port: number;
  /** How many calls it has answered. */
  calls(): number;
  stop(): Promise<void>;
}

/** Starts an echo backend on 127.0.0.1 with an ephemeral port. */
export async function startEchoBackend(name: string): Promise<EchoBackend> {
  const server = new grpc.Server();
  let calls = 0;
  server.addService(ECHO_SERVICE, {
    Echo: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      calls++;
      cb(null, Buffer.from(name));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return {
    name,
    port,
    calls: () => calls,
    stop: () => new Promise((resolve) => server.tryShutdown(() => resolve())),
  };
}

/** One unary call; resolves to the answering backend's name, rejects with the gRPC error. */
export function echo(client: grpc.Client, deadlineMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    (client as any).Echo(Buffer.from('hi'), { deadline: Date.now() + deadlineMs }, (e: grpc.ServiceError | null, b: Buffer) => (e ? reject(e) : resolve(b.toString())));
  });
}

/** `n` calls one after another; how many each backend answered, by name. */
export async function echoMany(client: grpc.Client, n: number): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const who = await echo(client);
    seen[who] = (seen[who] ?? 0) + 1;
  }
  return seen;
}
