/**
 * Example pipeline step, written as a pipeline of your own would be: it only writes, through the
 * buffer, so it keeps working while the database is out of reach.
 *
 * `{ document_uuid?, filename, content_type?, text }` → `{ document_uuid, chunks: [{ chunk_uuid,
 * chunk_index, text }] }`, the input of `extract-entities`. It registers the document as
 * `processing`, writes its chunks (`CHUNK_SIZE` characters, `CHUNK_OVERLAP` shared, never split
 * inside a word), then marks it `completed`, or `failed` with the error. Ids derive from the input,
 * so a retry with the same input writes the same rows again, never duplicates.
 */
import { SpillwayError } from '../core/errors.js';
import { chunkRows, parseDocumentInput } from '../core/pipeline.js';
import { getBufferConfig } from '../io/config.js';
import { getWriter, type Writer } from '../io/container.js';
import { lambdaHandler } from '../io/invocation.js';
import { logger } from '../io/telemetry.js';

/** Bytes a chunk row may take beyond its text (ids, offsets, JSON). */
const CHUNK_ROW_OVERHEAD = 512;

export const handler = lambdaHandler(async (event) => {
  const input = parseDocumentInput(event);
  const config = getBufferConfig();
  const writer = await getWriter();
  const document_uuid = input.document_uuid;

  await writer.write({
    changes: [
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
    ],
  });

  try {
    const chunks = chunkRows(document_uuid, input.text, {
      size: config.chunkSize,
      overlap: config.chunkOverlap,
    });
    // As many chunks per changeset as the limits allow (a character is at most 3 UTF-8 bytes).
    const perChangeset = Math.max(
      1,
      Math.min(
        config.changesetMaxChanges,
        Math.floor(config.changesetMaxBytes / (config.chunkSize * 3 + CHUNK_ROW_OVERHEAD)),
      ),
    );
    for (let from = 0; from < chunks.length; from += perChangeset) {
      await writer.write({
        changes: chunks.slice(from, from + perChangeset).map((record) => ({
          op: 'upsert',
          table: 'document_chunks',
          record,
        })),
      });
    }
    await setStatus(writer, document_uuid, 'completed', null);
    return {
      document_uuid,
      chunks: chunks.map(({ chunk_uuid, chunk_index, text }) => ({
        chunk_uuid,
        chunk_index,
        text,
      })),
    };
  } catch (error) {
    await recordFailure(writer, document_uuid, error);
    throw error;
  }
});

function setStatus(
  writer: Writer,
  document_uuid: string,
  status: 'completed' | 'failed',
  error_message: string | null,
) {
  return writer.write({
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
async function recordFailure(writer: Writer, document_uuid: string, error: unknown): Promise<void> {
  const message =
    error instanceof SpillwayError ? `${error.name}: ${error.message}` : String(error);
  try {
    await setStatus(writer, document_uuid, 'failed', message.slice(0, 2_000));
  } catch (recordError) {
    logger.warn('could not mark the document failed', { document_uuid, error: recordError });
  }
}
