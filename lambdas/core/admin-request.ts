/**
 * The `admin` function's request: pure parsing, each problem a ValidationError naming its path.
 */
import { ValidationError } from './errors.js';

/** Most dead letters or pending changesets one `list` or `peek` returns. */
export const ADMIN_MAX_LIMIT = 1_000;
/** What `list` and `peek` return without a `limit`. */
export const ADMIN_DEFAULT_LIMIT = 100;
/**
 * Most bytes of dead letters one `list` answer carries: Lambda's synchronous response limit is
 * 6 MB, and the answer's envelope needs some of it. A page stops before this (but holds at least
 * one letter, which is at most CHANGESET_MAX_BYTES plus its reason).
 */
export const ADMIN_MAX_LIST_BYTES = 5 * 1024 * 1024;

const ACTIONS = ['list', 'replay', 'purge', 'peek', 'acknowledge-cache-loss'] as const;

/** Which dead letters `replay` and `purge` apply to. */
export type AdminSelection = { readonly changesetIds: readonly string[] } | { readonly all: true };

export type AdminRequest =
  /** The dead letters, oldest first, one page after `cursor` (a `nextCursor` of an earlier page). */
  | { readonly action: 'list'; readonly limit: number; readonly cursor?: string }
  /** Put dead letters back into the backlog, in their original order and versions. */
  | { readonly action: 'replay'; readonly selection: AdminSelection }
  /** Delete dead letters for good. */
  | { readonly action: 'purge'; readonly selection: AdminSelection }
  /** The oldest changesets waiting in the backlog. */
  | { readonly action: 'peek'; readonly limit: number }
  /** An operator has seen that the cache lost its data: `health` stops reporting it. */
  | { readonly action: 'acknowledge-cache-loss' };

/**
 * `{ action: 'list' | 'peek', limit? }` or `{ action: 'replay' | 'purge', changesetIds | all: true }`.
 * @throws ValidationError naming the offending field.
 */
export function parseAdminRequest(input: unknown): AdminRequest {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ValidationError('', `expected an object { action: ${ACTIONS.join(' | ')}, ... }`);
  }
  const fields = input as Record<string, unknown>;
  const action = fields.action;
  if (typeof action !== 'string' || !(ACTIONS as readonly string[]).includes(action)) {
    throw new ValidationError(
      'action',
      `expected one of ${ACTIONS.map((a) => `'${a}'`).join(', ')}, got ${describe(action)}`,
    );
  }
  const allowed =
    action === 'list'
      ? ['limit', 'cursor']
      : action === 'peek'
        ? ['limit']
        : action === 'acknowledge-cache-loss'
          ? []
          : ['changesetIds', 'all'];
  for (const name of Object.keys(fields)) {
    if (name !== 'action' && !allowed.includes(name)) {
      throw new ValidationError(name, `not a field of the '${action}' action`);
    }
  }
  switch (action) {
    case 'list': {
      const cursor = cursorOf(fields.cursor);
      return { action, limit: limitOf(fields.limit), ...(cursor === undefined ? {} : { cursor }) };
    }
    case 'peek':
      return { action, limit: limitOf(fields.limit) };
    case 'acknowledge-cache-loss':
      return { action };
    default:
      return { action: action as 'replay' | 'purge', selection: selectionOf(fields) };
  }
}

function cursorOf(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]{1,400}$/.test(value)) {
    throw new ValidationError(
      'cursor',
      `expected the nextCursor of an earlier list answer, got ${describe(value)}`,
    );
  }
  return value;
}

function limitOf(value: unknown): number {
  if (value === undefined) return ADMIN_DEFAULT_LIMIT;
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < 1 ||
    value > ADMIN_MAX_LIMIT
  ) {
    throw new ValidationError(
      'limit',
      `expected an integer from 1 to ${ADMIN_MAX_LIMIT}, got ${describe(value)}`,
    );
  }
  return value;
}

function selectionOf(fields: Record<string, unknown>): AdminSelection {
  const { changesetIds, all } = fields;
  if (all !== undefined && changesetIds !== undefined) {
    throw new ValidationError('all', 'give either changesetIds or all: true, not both');
  }
  if (all !== undefined) {
    if (all !== true) throw new ValidationError('all', `expected true, got ${describe(all)}`);
    return { all: true };
  }
  if (!Array.isArray(changesetIds) || changesetIds.length === 0) {
    throw new ValidationError(
      'changesetIds',
      `expected a non-empty array of changeset ids (or all: true), got ${describe(changesetIds)}`,
    );
  }
  changesetIds.forEach((id, index) => {
    if (typeof id !== 'string' || id === '' || id.length > 200) {
      throw new ValidationError(
        `changesetIds[${index}]`,
        `expected a changeset id, got ${describe(id)}`,
      );
    }
  });
  return { changesetIds: [...new Set(changesetIds as string[])] };
}

/**
 * A short rendering of a found value. Only scalars are serialised: JSON.stringify of an input
 * nested thousands of levels deep would overflow the stack (a RangeError instead of the
 * ValidationError owed).
 */
function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return `an array of ${value.length} items`;
  if (typeof value === 'object' && value !== null) return 'an object';
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > 64 ? `${text.slice(0, 61)}...` : text;
}
