/**
 * Reasons for dead letters and errors that stay useful but bounded: the database's message, its
 * SQLSTATE and what it names (table, column, constraint), never the rows it quotes.
 */
import { messageOf } from './errors.js';

/** Most characters of a reason. */
export const MAX_REASON_CHARS = 500;

/** What a PostgreSQL error (pg's DatabaseError) carries besides its message. */
interface DatabaseErrorFields {
  readonly code?: unknown;
  readonly detail?: unknown;
  readonly table?: unknown;
  readonly column?: unknown;
  readonly constraint?: unknown;
}

/**
 * The reason a database error gives: its message, then SQLSTATE, table, column and constraint,
 * then its DETAIL unless that quotes the row ("Failing row contains (...)"), cut at
 * MAX_REASON_CHARS.
 */
export function databaseReason(error: unknown): string {
  const message = messageOf(error);
  const fields = (typeof error === 'object' && error !== null ? error : {}) as DatabaseErrorFields;
  const named = (
    [
      ['SQLSTATE', fields.code],
      ['table', fields.table],
      ['column', fields.column],
      ['constraint', fields.constraint],
    ] as const
  )
    .filter(([, value]) => typeof value === 'string' && value !== '')
    .map(([label, value]) => `${label} ${boundText(String(value), 64)}`);
  const detail =
    typeof fields.detail === 'string' && !/^Failing row contains/.test(fields.detail)
      ? fields.detail
      : undefined;
  // The names come first after a short message, so that cutting the detail never loses them.
  const parts = [boundText(message, 200), named.length > 0 ? `(${named.join(', ')})` : ''];
  if (detail !== undefined) parts.push(detail);
  return boundText(parts.filter((part) => part !== '').join(' '), MAX_REASON_CHARS);
}

/** `text`, cut to at most `max` characters (an ellipsis included), never inside a surrogate pair. */
export function boundText(text: string, max = MAX_REASON_CHARS): string {
  if (text.length <= max) return text;
  let end = max - 1;
  if (/[\uD800-\uDBFF]/.test(text.charAt(end - 1))) end--;
  return `${text.slice(0, end)}…`;
}
