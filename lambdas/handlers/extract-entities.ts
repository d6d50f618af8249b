/**
 * Example pipeline step, written as a pipeline of your own would be: it only writes, through the
 * buffer, so it keeps working while the database is out of reach.
 *
 * `{ document_uuid, chunks: [{ chunk_uuid, text }] }` (what `process-document` returns) →
 * `{ document_uuid, task_id, changesetId, version, entities, relationships }` (`version`: ask
 * `read` with `{ changesets: [version] }` whether the run reached the database). Extracts
 * emails, phone numbers, dates, money amounts, case numbers and organisations with deterministic
 * rules, and writes the mentions (offsets within their chunk), a `co_occurs_with` relationship
 * between mentions of the same sentence and the `processing_tasks` row of this run, all in one
 * changeset: they reach the database together or not at all (G3). Ids derive from the input, so
 * a retry writes the same rows again, never duplicates.
 */
import { SpillwayError, ValidationError } from '../core/errors.js';
import { entityRows, parseEntitiesInput, taskId } from '../example/pipeline.js';
import { getBufferConfig } from '../io/config.js';
import { loggableError, logger } from '../io/telemetry.js';
import { getBuffer } from '../runtime/container.js';
import { lambdaHandler } from '../runtime/invocation.js';

const TASK_TYPE = 'extract-entities';

export const handler = lambdaHandler(async (event) => {
  const input = parseEntitiesInput(event);
  const buffer = await getBuffer();
  const startedAt = new Date().toISOString();
  const task_id = taskId(TASK_TYPE, input.document_uuid);
  const task = {
    task_id,
    document_uuid: input.document_uuid,
    task_type: TASK_TYPE,
    started_at: startedAt,
  };

  try {
    const { mentions, relationships } = entityRows(input);
    const limit = getBufferConfig().changesetMaxChanges;
    const changes = mentions.length + relationships.length + 1;
    if (changes > limit) {
      throw new ValidationError(
        'chunks',
        `found ${mentions.length} entities and ${relationships.length} relationships: ${changes} changes, more than one changeset may hold (CHANGESET_MAX_CHANGES=${limit}); send fewer chunks per call`,
      );
    }
    // `attempts` is left alone: only whoever retries the step knows how often it ran.
    const { changesetId, version } = await buffer.write({
      changes: [
        ...mentions.map((record) => ({ op: 'upsert', table: 'entity_mentions', record })),
        ...relationships.map((record) => ({ op: 'upsert', table: 'relationships', record })),
        {
          op: 'upsert',
          table: 'processing_tasks',
          record: {
            ...task,
            status: 'succeeded',
            error_message: null,
            completed_at: new Date().toISOString(),
          },
        },
      ],
    });
    return {
      document_uuid: input.document_uuid,
      task_id,
      changesetId,
      version,
      entities: mentions.length,
      relationships: relationships.length,
    };
  } catch (error) {
    const message =
      error instanceof SpillwayError ? `${error.name}: ${error.message}` : String(error);
    try {
      await buffer.write({
        changes: [
          {
            op: 'upsert',
            table: 'processing_tasks',
            record: {
              ...task,
              status: 'failed',
              error_message: message.slice(0, 2_000),
              completed_at: new Date().toISOString(),
            },
          },
        ],
      });
    } catch (recordError) {
      // Redis is out of reach too: the caller's retry will record the run.
      logger.warn('could not record the failed task', {
        task_id,
        error: loggableError(recordError),
      });
    }
    throw error;
  }
});
