/**
 * The outcome of an operation whose failure is expected (bad input, a rejected config): a value, not a throw.
 * Unexpected failures (bugs, I/O the caller cannot handle) still throw.
 */
export type Result<T, E = string> = { ok: true; value: T } | { ok: false; error: E };

/** Wraps a success. */
export function ok<T>(value: T): { ok: true; value: T } {
  return { ok: true, value };
}

/** Wraps an expected failure. */
export function err<E>(error: E): { ok: false; error: E } {
  return { ok: false, error };
}
