/**
 * Versions order changes per row (G2). A version is the Redis stream id of the change's
 * changeset, "<ms>-<seq>", which the stream makes strictly increasing in acknowledgement order.
 * PostgreSQL stores it as one bigint, ms * 1_000_000 + seq.
 */
const STREAM_ID = /^(\d{1,15})-(\d{1,6})$/;

/** The bigint (as a decimal string) stored in the version tables for a stream id. */
export function versionOf(streamId: string): string {
  const match = STREAM_ID.exec(streamId);
  if (!match) throw new Error(`not a stream id usable as a version: ${streamId}`);
  return (BigInt(match[1] ?? '0') * 1_000_000n + BigInt(match[2] ?? '0')).toString();
}

/** Milliseconds since the epoch at which a stream id was assigned. */
export function timeOf(streamId: string): number {
  return Number(streamId.split('-')[0]);
}

/** A key that sorts versions as text (for the dead-letter index). */
export function sortableVersion(version: string): string {
  return version.padStart(20, '0');
}
