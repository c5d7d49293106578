/**
 * The outcome of an operation whose failure is expected (bad input, a rejected config): a value, not a throw.
 * Unexpected failures still throw {@link InferplaneError}.
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

/** The one error class for unexpected failures; `code` is stable and machine-readable. */
export class InferplaneError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'InferplaneError';
  }
}
