import type http from 'node:http';
import type { AddressInfo } from 'node:net';

/** An HTTP server that is listening. */
export interface ListeningServer {
  /** The bound port (useful when asked for port 0). */
  readonly port: number;
  /** Closes every connection, idle or not, and stops listening. */
  close(): Promise<void>;
}

/** Starts `server` on `host:port`; rejects if the address cannot be bound. */
export async function listen(server: http.Server, host: string, port: number): Promise<ListeningServer> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
