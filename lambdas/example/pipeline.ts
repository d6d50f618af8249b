/**
 * The example pipeline's pure parts: parsing each step's input, and the rows a step writes, with
 * ids derived from the input so that a retried step writes the same rows again instead of new
 * ones. The handlers `process-document` and `extract-entities` add only the writes.
 */
import { createHash } from 'node:crypto';
import type { JsonValue } from '../core/changeset.js';
import { ValidationError } from '../core/errors.js';
import { type Chunk, chunkText } from './chunking.js';
import { coOccurringPairs, type EntityMention, extractEntities } from './entities.js';
import { deriveId } from './ids.js';

type Row = Record<string, JsonValue>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What `process-document` takes. */
export interface DocumentInput {
  /** Given by the caller, or derived from the file name and the text. */
  readonly document_uuid: string;
  readonly filename: string;
  readonly content_type: string | null;
  readonly text: string;
}

/** One chunk as `process-document` returns it and `extract-entities` takes it. */
export interface ChunkRef {
  readonly chunk_uuid: string;
  readonly chunk_index: number;
  readonly text: string;
}

/** What `extract-entities` takes: `process-document`'s result. */
export interface EntitiesInput {
  readonly document_uuid: string;
  readonly chunks: readonly Pick<ChunkRef, 'chunk_uuid' | 'text'>[];
}

/**
 * `{ document_uuid?, filename, content_type?, text }`. Without a `document_uuid`, the id is
 * derived from the file name and the text: the same document sent again is the same document.
 * @throws ValidationError naming the offending field.
 */
export function parseDocumentInput(input: unknown): DocumentInput {
  const fields = objectOf(input, '{ document_uuid?, filename, content_type?, text }');
  const filename = fields.filename;
  if (typeof filename !== 'string' || filename.trim() === '') {
    throw new ValidationError('filename', 'expected a non-empty string');
  }
  const text = fields.text;
  if (typeof text !== 'string') throw new ValidationError('text', 'expected a string');
  const contentType = fields.content_type;
  if (contentType !== undefined && contentType !== null && typeof contentType !== 'string') {
    throw new ValidationError('content_type', 'expected a string');
  }
  const given = fields.document_uuid;
  if (given !== undefined && given !== null && !isUuid(given)) {
    throw new ValidationError('document_uuid', 'expected a UUID');
  }
  return {
    document_uuid: isUuid(given)
      ? given.toLowerCase()
      : deriveId('document', filename, createHash('sha256').update(text).digest('hex')),
    filename,
    content_type: typeof contentType === 'string' ? contentType : null,
    text,
  };
}

/** The chunks of a document as `document_chunks` rows, each id derived from the document's and the index. */
export function chunkRows(
  documentUuid: string,
  text: string,
  options: { readonly size: number; readonly overlap: number },
): Row[] {
  return chunkText(text, options).map((chunk: Chunk) => ({
    chunk_uuid: deriveId('chunk', documentUuid, chunk.chunk_index),
    document_uuid: documentUuid,
    chunk_index: chunk.chunk_index,
    text: chunk.text,
    char_start: chunk.char_start,
    char_end: chunk.char_end,
  }));
}

/** Limits of one changeset, as the buffer enforces them (`CHANGESET_MAX_CHANGES`, `CHANGESET_MAX_BYTES`). */
export interface ChangesetLimits {
  readonly maxChanges: number;
  readonly maxBytes: number;
}

/** Bytes of `{"changes":[]}`: what a changeset's JSON holds besides its changes and commas. */
const EMPTY_CHANGESET_BYTES = Buffer.byteLength(JSON.stringify({ changes: [] }), 'utf8');

/**
 * `changes` in order, packed into as few `{ changes }` changesets as the limits allow, measured
 * as the buffer measures them: UTF-8 bytes of the JSON, escapes included (a control character
 * takes 6 bytes, not 1 to 3).
 * @throws ValidationError, before anything is written, when one change alone does not fit.
 */
export function packChangesets<C extends JsonValue>(
  changes: readonly C[],
  limits: ChangesetLimits,
): { changes: C[] }[] {
  const packed: { changes: C[] }[] = [];
  let current: C[] = [];
  let bytes = EMPTY_CHANGESET_BYTES;
  changes.forEach((change, index) => {
    const size = Buffer.byteLength(JSON.stringify(change), 'utf8');
    if (EMPTY_CHANGESET_BYTES + size > limits.maxBytes) {
      throw new ValidationError(
        `changes[${index}]`,
        `takes ${size} bytes of JSON, more than a changeset may hold (${limits.maxBytes}); lower CHUNK_SIZE or raise CHANGESET_MAX_BYTES`,
      );
    }
    const added = current.length === 0 ? size : size + 1;
    if (
      current.length > 0 &&
      (current.length >= limits.maxChanges || bytes + added > limits.maxBytes)
    ) {
      packed.push({ changes: current });
      current = [];
      bytes = EMPTY_CHANGESET_BYTES;
    }
    bytes += current.length === 0 ? size : size + 1;
    current.push(change);
  });
  if (current.length > 0) packed.push({ changes: current });
  return packed;
}

/**
 * `{ document_uuid, chunks: [{ chunk_uuid, text }] }`; other fields of a chunk (its index, say)
 * are ignored.
 * @throws ValidationError naming the offending field.
 */
export function parseEntitiesInput(input: unknown): EntitiesInput {
  const fields = objectOf(input, '{ document_uuid, chunks: [{ chunk_uuid, text }] }');
  const documentUuid = fields.document_uuid;
  if (!isUuid(documentUuid)) throw new ValidationError('document_uuid', 'expected a UUID');
  const chunks = fields.chunks;
  if (!Array.isArray(chunks)) throw new ValidationError('chunks', 'expected an array');
  return {
    document_uuid: documentUuid.toLowerCase(),
    chunks: chunks.map((chunk: unknown, index) => {
      const path = `chunks[${index}]`;
      const each = objectOf(chunk, '{ chunk_uuid, text }', path);
      if (!isUuid(each.chunk_uuid)) {
        throw new ValidationError(`${path}.chunk_uuid`, 'expected a UUID');
      }
      if (typeof each.text !== 'string') {
        throw new ValidationError(`${path}.text`, 'expected a string');
      }
      return { chunk_uuid: each.chunk_uuid.toLowerCase(), text: each.text };
    }),
  };
}

/** The rows `extract-entities` writes for its input. */
export interface EntityRows {
  readonly mentions: Row[];
  readonly relationships: Row[];
}

/**
 * The entity mentions of every chunk (offsets within the chunk's text) and a `co_occurs_with`
 * relationship between mentions of the same sentence. A mention's id derives from its chunk, type
 * and offsets; a relationship's from its two mentions.
 */
export function entityRows(input: EntitiesInput): EntityRows {
  const mentions: Row[] = [];
  const relationships: Row[] = [];
  for (const chunk of input.chunks) {
    const found = extractEntities(chunk.text).map((mention) => ({
      ...mention,
      entity_uuid: deriveId(
        'entity',
        chunk.chunk_uuid,
        mention.entity_type,
        mention.start_offset,
        mention.end_offset,
      ),
    }));
    for (const mention of found) {
      mentions.push({
        entity_uuid: mention.entity_uuid,
        document_uuid: input.document_uuid,
        chunk_uuid: chunk.chunk_uuid,
        entity_type: mention.entity_type,
        text: mention.text,
        confidence: mention.confidence,
        start_offset: mention.start_offset,
        end_offset: mention.end_offset,
      });
    }
    for (const [source, target] of coOccurringPairs<EntityMention & { entity_uuid: string }>(
      chunk.text,
      found,
    )) {
      relationships.push({
        relationship_uuid: deriveId(
          'relationship',
          'co_occurs_with',
          source.entity_uuid,
          target.entity_uuid,
        ),
        document_uuid: input.document_uuid,
        source_entity_uuid: source.entity_uuid,
        target_entity_uuid: target.entity_uuid,
        relationship_type: 'co_occurs_with',
        confidence: Math.min(source.confidence, target.confidence),
        attributes: { chunk_uuid: chunk.chunk_uuid },
      });
    }
  }
  return { mentions, relationships };
}

/** The id of a step's `processing_tasks` row for a document: a retried run updates the same row. */
export function taskId(taskType: string, documentUuid: string): string {
  return deriveId('task', taskType, documentUuid);
}

function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}

function objectOf(input: unknown, shape: string, path = ''): Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ValidationError(path, `expected an object ${shape}`);
  }
  return input as Record<string, unknown>;
}
