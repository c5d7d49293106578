// Apart from stream.ts so that `inferplane status` can name states without loading the xDS server.

/** Where a stream stands with one type (see {@link syncState}). */
export type SyncState = 'synced' | 'pending' | 'nacked' | 'not-sent' | 'stale';

/**
 * One type's state on one stream: synced (the last response ACKed), pending (sent, not yet answered), nacked
 * (the last response rejected), not-sent (subscribed, nothing sent yet), stale (an older version ACKed, the
 * latest neither ACKed nor rejected).
 */
export function syncState(t: { readonly sentVersion?: string | undefined; readonly ackedVersion?: string | undefined; readonly pendingNonce?: string | undefined } & { readonly lastNack?: { readonly version?: string } | undefined }): SyncState {
  if (t.sentVersion === undefined) return 'not-sent';
  if (t.pendingNonce !== undefined) return 'pending';
  if (t.ackedVersion === t.sentVersion) return 'synced';
  if (t.lastNack && t.lastNack.version === t.sentVersion) return 'nacked';
  return 'stale';
}
