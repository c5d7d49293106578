import fs from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { ServerTls } from '../grpc/server.js';
import type { Logger } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import { err, ok, type Result } from '../result.js';

/** Where the serving certificate, its key and (for mTLS) the client CA are: Kubernetes Secret mounts, typically. */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** With it, every client must present a certificate that chains to this CA (mTLS). */
  readonly clientCaFile?: string;
}

/** One consistent set of credentials, as read and checked. */
interface TlsMaterial {
  readonly certificate: Buffer;
  readonly privateKey: Buffer;
  readonly caCertificate: Buffer | null;
  /** When the serving certificate expires. */
  readonly notAfter: Date;
}

/**
 * Reads and checks the files: each must be readable PEM, the key must match the certificate, and the certificate
 * must be within its validity period at `now`. Every problem names its file.
 */
export function readTlsFiles(files: TlsFiles, now = new Date()): Result<TlsMaterial, string> {
  const read = (file: string): Buffer | string => {
    try {
      return fs.readFileSync(file);
    } catch (e) {
      return `${file}: cannot read: ${e instanceof Error ? e.message : String(e)}`;
    }
  };
  const certificate = read(files.certFile);
  if (typeof certificate === 'string') return err(certificate);
  const privateKey = read(files.keyFile);
  if (typeof privateKey === 'string') return err(privateKey);
  const caCertificate = files.clientCaFile === undefined ? null : read(files.clientCaFile);
  if (typeof caCertificate === 'string') return err(caCertificate);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certificate);
  } catch (e) {
    return err(`${files.certFile}: not a PEM certificate: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    if (!cert.checkPrivateKey(createPrivateKey(privateKey))) return err(`${files.keyFile}: the key does not match the certificate ${files.certFile}`);
  } catch (e) {
    return err(`${files.keyFile}: not a PEM private key: ${e instanceof Error ? e.message : String(e)}`);
  }
  const notAfter = new Date(cert.validTo);
  if (now > notAfter) return err(`${files.certFile}: the certificate expired at ${notAfter.toISOString()}`);
  if (now < new Date(cert.validFrom)) return err(`${files.certFile}: the certificate is not valid before ${new Date(cert.validFrom).toISOString()}`);
  if (caCertificate) {
    try {
      new X509Certificate(caCertificate);
      tls.createSecureContext({ ca: caCertificate });
    } catch (e) {
      return err(`${files.clientCaFile}: not a PEM CA certificate: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return ok({ certificate, privateKey, caCertificate, notAfter });
}

/** The serving credentials, kept current from the files. */
export interface TlsSource {
  /** TLS for the gRPC server: new connections use the latest good files; open ones are untouched. */
  readonly server: ServerTls;
  /**
   * Credentials for connecting to another inferplane replica (the stats relay), from the current files: this
   * replica's certificate as the client identity, the client CA as the trust root (system roots without one).
   * Replicas dial each other by pod IP, which their certificates need not name, so the peer is accepted when
   * its certificate chains to the CA and names one of this certificate's DNS names (it is another replica of the
   * same service), not by the dialled address.
   */
  clientChannel(): { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions };
  /** Whether a peer's certificate is another replica's: it names one of this certificate's DNS names. */
  isReplica(certificate: { subjectaltname?: string | undefined } | undefined): boolean;
  /** Re-reads the files now (the poll does this on its own). */
  reload(): void;
  close(): void;
}

/**
 * Serves TLS (mTLS with a client CA) from files that may be rotated while running (a Secret mount changes under
 * the process): they are re-read every `pollMs`, and a new set is taken only when it passes
 * {@link readTlsFiles}. A broken or expired set is logged with the file and the reason, counted, and the last good
 * one stays in use. The first read must succeed: a process that cannot serve TLS does not start.
 */
export function createTlsSource(files: TlsFiles, o: { log: Logger; metrics: Metrics; pollMs?: number }): TlsSource {
  const first = readTlsFiles(files);
  if (!first.ok) throw new Error(`TLS: ${first.error}`);
  const reloads = o.metrics.counter('inferplane_tls_reloads_total', 'Certificate files re-read after a change, by outcome', ['outcome'], [{ outcome: 'loaded' }, { outcome: 'rejected' }]);
  o.metrics.gauge('inferplane_tls_certificate_expiry_seconds', 'Unix time at which the serving certificate expires', [], () => current.notAfter.getTime() / 1000);
  let current = first.value;
  let lastProblem: string | undefined;
  const listeners = new Set<() => void>();
  const server: ServerTls = {
    current: () => ({ key: current.privateKey, cert: current.certificate, ...(current.caCertificate && { ca: current.caCertificate }) }),
    requireClientCert: files.clientCaFile !== undefined,
    onChange(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
  };
  const same = (a: TlsMaterial, b: TlsMaterial) => a.certificate.equals(b.certificate) && a.privateKey.equals(b.privateKey) && (a.caCertificate?.equals(b.caCertificate ?? Buffer.alloc(0)) ?? b.caCertificate === null);
  const reload = () => {
    const next = readTlsFiles(files);
    if (!next.ok) {
      if (lastProblem !== next.error) {
        reloads.inc({ outcome: 'rejected' });
        o.log.error('TLS files rejected; new connections keep using the last good certificate', { problem: next.error });
      }
      lastProblem = next.error;
      return;
    }
    lastProblem = undefined;
    if (same(next.value, current)) return;
    current = next.value;
    reloads.inc({ outcome: 'loaded' });
    o.log.info('TLS certificate reloaded', { certificate: files.certFile, notAfter: current.notAfter.toISOString() });
    for (const l of listeners) l();
  };
  const timer = setInterval(reload, o.pollMs ?? 1_000).unref();
  const dnsNames = (c: { subjectaltname?: string | undefined }) => new Set((c.subjectaltname ?? '').split(', ').filter((n) => n.startsWith('DNS:')));
  const ownNames = () => dnsNames({ subjectaltname: new X509Certificate(current.certificate).subjectAltName });
  const isReplica = (peer: { subjectaltname?: string | undefined } | undefined) => {
    const own = ownNames();
    return peer !== undefined && [...dnsNames(peer)].some((n) => own.has(n));
  };
  return {
    isReplica,
    clientChannel() {
      const own = ownNames();
      const credentials = grpc.credentials.createSsl(current.caCertificate, current.privateKey, current.certificate, {
        checkServerIdentity: (_host, peer) => (isReplica(peer) ? undefined : new Error(`the peer's certificate names none of this replica's DNS names (${[...own].join(', ') || 'none'})`)),
      });
      // A name for SNI rather than the dialled IP (which TLS does not allow there).
      const name = [...own][0]?.slice('DNS:'.length);
      return { credentials, options: name ? { 'grpc.ssl_target_name_override': name } : {} };
    },
    server,
    reload,
    close: () => clearInterval(timer),
  };
}
