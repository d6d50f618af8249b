/**
 * Deterministic ids: a retried pipeline step derives the same ids from the same input,
 * so calling it again upserts the same rows instead of creating duplicates.
 */
import { createHash } from 'node:crypto';

/** Namespace of every id Spillway derives (a random v4 UUID, fixed forever: changing it changes every id). */
export const SPILLWAY_NAMESPACE = '6e60164b-fc4e-4d14-82af-a60295398ff5';

/** The DNS namespace of RFC 9562 appendix A (for tests against the RFC's vectors). */
export const DNS_NAMESPACE = '6ba7b810-9dad-11d1-80b4-00c04fd430c8';

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** UUID version 5 (SHA-1, name-based) of `name` in `namespace`, per RFC 9562 section 5.5. */
export function uuidV5(name: string, namespace: string = SPILLWAY_NAMESPACE): string {
  if (!UUID_PATTERN.test(namespace)) throw new TypeError(`namespace is not a UUID: '${namespace}'`);
  const bytes = createHash('sha1')
    .update(Buffer.from(namespace.replaceAll('-', ''), 'hex'))
    .update(name, 'utf8')
    .digest()
    .subarray(0, 16);
  // The indices exist: a SHA-1 digest has 20 bytes.
  bytes[6] = ((bytes[6] as number) & 0x0f) | 0x50;
  bytes[8] = ((bytes[8] as number) & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * The id of a thing a pipeline step creates, from what identifies it:
 * `deriveId('chunk', documentUuid, 3)`. The parts are encoded as a JSON array, so
 * `('a-b', 'c')` and `('a', 'b-c')` never collide.
 */
export function deriveId(kind: string, ...parts: readonly (string | number)[]): string {
  return uuidV5(JSON.stringify([kind, ...parts]));
}
