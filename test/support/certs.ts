import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A certificate and its key, as files. */
export interface CertFiles {
  readonly cert: string;
  readonly key: string;
}

/** A test PKI made with the openssl CLI: two CAs, and certificates signed by them. */
export interface TestPki {
  readonly dir: string;
  readonly ca: string;
  readonly otherCa: string;
  /** Signs a new leaf with `ca` (or the other CA) for the given SANs, valid for `days` (negative: expired). */
  issue(name: string, o: { sans: readonly string[]; days?: number; byOtherCa?: boolean }): CertFiles;
  remove(): void;
}

function openssl(args: readonly string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

/** Creates a throwaway PKI in a temporary directory (EC P-256 keys: fast to make). */
export function createTestPki(): TestPki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-pki-'));
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  for (const ca of ['ca', 'other-ca']) openssl(['req', '-x509', ...newKey, '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-subj', `/CN=inferplane test ${ca}`, '-days', '2'], dir);
  return {
    dir,
    ca: path.join(dir, 'ca.crt'),
    otherCa: path.join(dir, 'other-ca.crt'),
    issue(name, o) {
      const ca = o.byOtherCa ? 'other-ca' : 'ca';
      fs.writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${o.sans.join(',')}\nextendedKeyUsage=serverAuth,clientAuth\n`);
      openssl(['req', ...newKey, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
      openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', String(o.days ?? 1), '-extfile', `${name}.ext`], dir);
      return { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
    },
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
