import type { HeaderField } from './hpack.js';

/**
 * The rules a request's header list must keep to be well formed (RFC 9113 §8.2 and §8.3). A request that breaks
 * one is malformed: the connection answers it with a stream error of type PROTOCOL_ERROR and serves nothing.
 */

/** A well-formed request's pseudo-headers and content-length. */
export interface RequestHead {
  readonly method: string;
  /** Empty for CONNECT, which has none. */
  readonly path: string;
  readonly contentLength: number | undefined;
}

/** A check's outcome: the value, or what is wrong, in words. */
export type Checked<T> = { readonly success: true; readonly value: T } | { readonly success: false; readonly error: string };

/** Request pseudo-headers (§8.3.1); `:protocol` belongs to extended CONNECT (RFC 8441), which we do not offer. */
const REQUEST_PSEUDO = new Set([':method', ':scheme', ':authority', ':path']);
/** Connection-specific fields (§8.2.2): HTTP/1.1 hop-by-hop fields that HTTP/2 forbids. */
const CONNECTION_SPECIFIC = new Set(['connection', 'proxy-connection', 'keep-alive', 'transfer-encoding', 'upgrade']);

/**
 * A field name may hold no uppercase letter, control character, space, DEL or byte above 0x7f (§8.2.1); a
 * colon only where it starts a pseudo-header.
 */
function badName(name: string): boolean {
  if (name.length === 0) return true;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c <= 0x20 || (c >= 0x41 && c <= 0x5a) || c >= 0x7f || (c === 0x3a && i > 0)) return true;
  }
  return false;
}

/** A field value may hold no NUL, CR or LF, and may not start or end with a space or tab (§8.2.1). */
function badValue(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0 || c === 0x0a || c === 0x0d) return true;
  }
  const first = value.charCodeAt(0);
  const last = value.charCodeAt(value.length - 1);
  return first === 0x20 || first === 0x09 || last === 0x20 || last === 0x09;
}

/** Checks the regular fields shared by requests and trailers; returns what is wrong, if anything. */
function checkField(name: string, value: string): string | undefined {
  if (badName(name)) return `field name ${JSON.stringify(name)} is not lowercase token characters`;
  if (badValue(value)) return `field ${name} has a value with NUL, CR, LF or surrounding white space`;
  if (CONNECTION_SPECIFIC.has(name)) return `connection-specific field ${name}`;
  // Transfer-coding names are case-insensitive (RFC 9110 §10.1.4).
  if (name === 'te' && value.toLowerCase() !== 'trailers') return `te is ${JSON.stringify(value)}, not "trailers"`;
  return undefined;
}

/** Checks a request's header list: pseudo-headers first, each once, the required ones present; fields well formed. */
export function checkRequestHeaders(fields: readonly HeaderField[]): Checked<RequestHead> {
  const pseudo = new Map<string, string>();
  let regular = false;
  let contentLength: number | undefined;
  for (const [name, value] of fields) {
    if (name.startsWith(':')) {
      if (regular) return { success: false, error: `pseudo-header ${name} after a regular field` };
      if (!REQUEST_PSEUDO.has(name)) return { success: false, error: `${name} is not a request pseudo-header` };
      if (pseudo.has(name)) return { success: false, error: `${name} appears twice` };
      if (badValue(value)) return { success: false, error: `${name} has a value with NUL, CR, LF or surrounding white space` };
      pseudo.set(name, value);
      continue;
    }
    regular = true;
    const wrong = checkField(name, value);
    if (wrong) return { success: false, error: wrong };
    if (name === 'content-length') {
      if (!/^[0-9]{1,15}$/.test(value)) return { success: false, error: `content-length ${JSON.stringify(value)} is not a number` };
      const n = Number(value);
      if (contentLength !== undefined && contentLength !== n) return { success: false, error: 'content-length given twice, differently' };
      contentLength = n;
    }
  }
  const method = pseudo.get(':method');
  if (method === undefined || method === '') return { success: false, error: ':method is missing' };
  // A method is a token (RFC 9110 §9.1), a scheme as RFC 3986 §3.1 has it, a path without controls or spaces.
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(method)) return { success: false, error: `:method ${JSON.stringify(method)} is not a token` };
  const scheme = pseudo.get(':scheme');
  if (scheme !== undefined && !/^[A-Za-z][A-Za-z0-9+\-.]*$/.test(scheme)) return { success: false, error: `:scheme ${JSON.stringify(scheme)} is not a scheme` };
  if (/[\x00-\x20\x7f-\xff]/.test(pseudo.get(':path') ?? '')) return { success: false, error: ':path holds a control character, a space or a byte above 0x7e' };
  if (method === 'CONNECT') {
    // CONNECT names only an authority (§8.5).
    if (pseudo.has(':scheme') || pseudo.has(':path') || !pseudo.get(':authority')) return { success: false, error: 'CONNECT needs :authority and no :scheme or :path' };
    return { success: true, value: { method, path: '', contentLength } };
  }
  const path = pseudo.get(':path');
  if (!pseudo.get(':scheme')) return { success: false, error: ':scheme is missing' };
  if (!path) return { success: false, error: ':path is missing or empty' };
  // Origin form, or "*" for OPTIONS (RFC 9113 §8.3.1; RFC 9112 §3.2).
  if (!path.startsWith('/') && !(path === '*' && method === 'OPTIONS')) return { success: false, error: `:path ${JSON.stringify(path)} does not start with /` };
  return { success: true, value: { method, path, contentLength } };
}

/** Whether trailers are well formed: no pseudo-header (§8.1), every field as in a request. */
export function checkTrailers(fields: readonly HeaderField[]): boolean {
  return fields.every(([name, value]) => !name.startsWith(':') && checkField(name, value) === undefined);
}
