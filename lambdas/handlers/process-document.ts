/**
 * Example pipeline step, written as a pipeline of your own would be: it only writes, through the
 * buffer, so it keeps working while the database is out of reach.
 *
 * `{ document_uuid?, filename, content_type?, text }` → `{ document_uuid, chunks: [{ chunk_uuid,
 * chunk_index, text }], versions }`, the input of `extract-entities`; `versions` are the versions
 * of the changesets it wrote, in order, for whoever needs them in the database to ask `read`
 * where they stand (`{ changesets: versions }`). It registers the document as
 * `processing` together with its first chunks, writes the rest of its chunks (`CHUNK_SIZE`
 * characters, `CHUNK_OVERLAP` shared, split inside a word only when the word is longer than
 * `CHUNK_SIZE`), packed into changesets by their measured size, then marks it `completed`, or
 * `failed` with the error. A document whose chunks cannot be written (a chunk larger than a
 * changeset may be) fails with a ValidationError before anything is written. Ids derive from the input,
 * so a retry with the same input writes the same rows again, never duplicates.
 */
import { SpillwayError } from '../core/errors.js';
import { chunkRows, packChangesets, parseDocumentInput } from '../example/pipeline.js';
import { getPipelineConfig } from '../example/settings.js';
import { getBufferConfig } from '../io/config.js';
import { loggableError, logger } from '../io/telemetry.js';
import { getBuffer } from '../runtime/container.js';
import { lambdaHandler } from '../runtime/invocation.js';
import type { RedisBuffer } from '../spillway.js';

export const handler = lambdaHandler(async (event) => {
  const input = parseDocumentInput(event);
  const config = getBufferConfig();
  const { chunkSize, chunkOverlap } = getPipelineConfig();
  const document_uuid = input.document_uuid;
  const chunks = chunkRows(document_uuid, input.text, { size: chunkSize, overlap: chunkOverlap });
  // The document rides in the first changeset with its first chunks: a `processing` row is
  // never written alone. Everything is packed, and measured, before anything is written.
  const changesets = packChangesets(
    [
      {
        op: 'upsert',
        table: 'source_documents',
        record: {
          document_uuid,
          filename: input.filename,
          content_type: input.content_type,
          status: 'processing',
          error_message: null,
          updated_at: new Date().toISOString(),
        },
      },
      ...chunks.map((record) => ({ op: 'upsert', table: 'document_chunks', record })),
    ],
    { maxChanges: config.changesetMaxChanges, maxBytes: config.changesetMaxBytes },
  );
  const buffer = await getBuffer();
  const versions: string[] = [];
  try {
    for (const changeset of changesets) {
      versions.push((await buffer.write(changeset)).version);
    }
    versions.push((await setStatus(buffer, document_uuid, 'completed', null)).version);
    return {
      document_uuid,
      chunks: chunks.map(({ chunk_uuid, chunk_index, text }) => ({
        chunk_uuid,
        chunk_index,
        text,
      })),
      versions,
    };
  } catch (error) {
    // A patch of a document never written would itself be dead-lettered.
    if (versions.length > 0) await recordFailure(buffer, document_uuid, error);
    throw error;
  }
});

function setStatus(
  buffer: RedisBuffer,
  document_uuid: string,
  status: 'completed' | 'failed',
  error_message: string | null,
) {
  return buffer.write({
    changes: [
      {
        op: 'patch',
        table: 'source_documents',
        key: { document_uuid },
        set: { status, error_message, updated_at: new Date().toISOString() },
      },
    ],
  });
}

/** Marks the document `failed`; when even that cannot be written, the caller's retry will. */
async function recordFailure(
  buffer: RedisBuffer,
  document_uuid: string,
  error: unknown,
): Promise<void> {
  const message =
    error instanceof SpillwayError ? `${error.name}: ${error.message}` : String(error);
  try {
    await setStatus(buffer, document_uuid, 'failed', message.slice(0, 2_000));
  } catch (recordError) {
    logger.warn('could not mark the document failed', {
      document_uuid,
      error: loggableError(recordError),
    });
  }
}
