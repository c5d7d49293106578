import http2 from 'node:http2';
import { ECHO_PATH } from './h2-frames.js';

/**
 * The differential check's oracle (test/grpc/frames.test.ts): the service our gRPC server offers there, on
 * `node:http2` (nghttp2), in a process of its own. It echoes each gRPC message on ECHO_PATH and ends OK when the
 * request ends, answers an unknown path UNIMPLEMENTED at once, and a request that is not gRPC with 405 or 415
 * once it has ended, as ours does. It sends its port to the parent, answers each message with 'pong', and runs
 * until killed.
 */
const server = http2.createServer({ settings: { maxConcurrentStreams: 1_000, initialWindowSize: 1 << 20, maxHeaderListSize: 16 * 1024 } });
server.on('stream', (stream, headers) => {
  stream.on('error', () => undefined);
  const type = String(headers['content-type'] ?? '');
  const plain = headers[':method'] !== 'POST' ? 405 : type === 'application/grpc' || type.startsWith('application/grpc+') ? 0 : 415;
  if (plain) {
    stream.resume();
    stream.on('end', () => {
      if (!stream.closed) stream.respond({ ':status': plain, 'content-type': 'text/plain' }, { endStream: true });
    });
    return;
  }
  if (headers[':path'] !== ECHO_PATH) {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12' }, { endStream: true });
    return;
  }
  let buf = Buffer.alloc(0);
  stream.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
      const n = 5 + buf.readUInt32BE(1);
      if (!stream.headersSent) stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.write(buf.subarray(0, n));
      buf = buf.subarray(n);
    }
  });
  stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
  stream.on('end', () => {
    if (stream.closed) return;
    if (!stream.headersSent) stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '0' }, { endStream: true });
    else stream.end();
  });
});
server.on('sessionError', () => undefined);
server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as { port: number }).port }));
// The parent asks whether this process still runs.
process.on('message', () => process.send!('pong'));
