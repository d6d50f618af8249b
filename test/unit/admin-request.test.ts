import { describe, expect, it } from 'vitest';
import { ADMIN_DEFAULT_LIMIT, parseAdminRequest } from '../../lambdas/core/admin-request.js';
import { ValidationError } from '../../lambdas/core/errors.js';

function problem(input: unknown): ValidationError {
  try {
    parseAdminRequest(input);
  } catch (error) {
    if (error instanceof ValidationError) return error;
    throw error;
  }
  throw new Error('expected a ValidationError');
}

describe('parseAdminRequest', () => {
  it('reads list and peek with a default limit', () => {
    expect(parseAdminRequest({ action: 'list' })).toEqual({
      action: 'list',
      limit: ADMIN_DEFAULT_LIMIT,
    });
    expect(parseAdminRequest({ action: 'peek', limit: 5 })).toEqual({ action: 'peek', limit: 5 });
  });

  it('reads a list cursor, and refuses one that no list answer could have given', () => {
    expect(parseAdminRequest({ action: 'list', cursor: 'MDAwMToy' })).toEqual({
      action: 'list',
      limit: ADMIN_DEFAULT_LIMIT,
      cursor: 'MDAwMToy',
    });
    expect(problem({ action: 'list', cursor: 'a b' }).message).toMatch(
      /^cursor: expected the nextCursor/,
    );
    expect(problem({ action: 'peek', cursor: 'MDAw' }).message).toBe(
      "cursor: not a field of the 'peek' action",
    );
  });

  it('reads acknowledge-cache-loss, which takes no other field', () => {
    expect(parseAdminRequest({ action: 'acknowledge-cache-loss' })).toEqual({
      action: 'acknowledge-cache-loss',
    });
    expect(problem({ action: 'acknowledge-cache-loss', all: true }).message).toBe(
      "all: not a field of the 'acknowledge-cache-loss' action",
    );
  });

  it('reads replay and purge of some ids, once each, or of all', () => {
    expect(parseAdminRequest({ action: 'replay', changesetIds: ['a', 'b', 'a'] })).toEqual({
      action: 'replay',
      selection: { changesetIds: ['a', 'b'] },
    });
    expect(parseAdminRequest({ action: 'purge', all: true })).toEqual({
      action: 'purge',
      selection: { all: true },
    });
  });

  it.each([
    ['no object', 'list', ''],
    ['an unknown action', { action: 'drop' }, 'action'],
    ['no action', {}, 'action'],
    ['a limit of zero', { action: 'list', limit: 0 }, 'limit'],
    ['a fractional limit', { action: 'peek', limit: 1.5 }, 'limit'],
    ['a limit as text', { action: 'peek', limit: '10' }, 'limit'],
    ['replay without a selection', { action: 'replay' }, 'changesetIds'],
    ['replay of no ids', { action: 'replay', changesetIds: [] }, 'changesetIds'],
    ['an id that is no string', { action: 'purge', changesetIds: ['a', 7] }, 'changesetIds[1]'],
    ['both ids and all', { action: 'purge', changesetIds: ['a'], all: true }, 'all'],
    ['all: false', { action: 'purge', all: false }, 'all'],
    ['a field of another action', { action: 'list', all: true }, 'all'],
  ])('names the offending field of %s', (_label, input, path) => {
    const error = problem(input);
    expect(error.path).toBe(path);
    expect(error.name).toBe('ValidationError');
  });

  it.each([
    ['limit', { action: 'list', limit: deeplyNested() }, 'limit'],
    ['action', { action: deeplyNested() }, 'action'],
    ['a changeset id', { action: 'replay', changesetIds: [deeplyNested()] }, 'changesetIds[0]'],
    ['all', { action: 'purge', all: deeplyNested() }, 'all'],
  ])(
    'answers a ValidationError, not a stack overflow, for %s nested 10,000 levels deep',
    (_label, input, path) => {
      expect(problem(input).path).toBe(path);
    },
  );
});

/** `[[[...]]]` 10,000 levels deep, as JSON.parse makes it of an invocation's payload. */
function deeplyNested(): unknown {
  return JSON.parse(`${'['.repeat(10_000)}${']'.repeat(10_000)}`);
}
