import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  classifyDatabaseError,
  classifySqlState,
  databaseReportOf,
  toDatabaseError,
} from '../../lambdas/core/db-errors.js';
import {
  BackpressureError,
  ConfigError,
  FencedError,
  MigrationError,
  NotFoundError,
  RejectedChangeError,
  SystemicDatabaseError,
  UnavailableError,
  ValidationError,
} from '../../lambdas/core/errors.js';

/** An error report as pg parses it from PostgreSQL's ErrorResponse. */
function reported(code: string, message = 'refused', fields: Record<string, string> = {}) {
  const error = new pg.DatabaseError(message, message.length, 'error');
  Object.assign(error, { severity: 'ERROR', code, ...fields });
  return error;
}

describe('classifying database failures', () => {
  it.each([
    ['23505', 'unique violation'],
    ['23503', 'foreign key violation'],
    ['22001', 'value too long'],
    ['22P02', 'invalid text representation'],
    ['P0001', 'RAISE EXCEPTION in a trigger'],
    ['P0004', 'ASSERT in a trigger'],
    ['09000', 'triggered action exception'],
    ['2F005', 'function ended without RETURN'],
    ['38001', 'external routine exception'],
    ['39P01', 'trigger protocol violated'],
    ['44000', 'WITH CHECK OPTION violation'],
    ['54000', 'index row too big'],
    ['21000', 'ON CONFLICT affecting a row twice'],
  ])('%s (%s) is a refusal of the change', (code) => {
    expect(classifySqlState(code)).toBe('refused');
  });

  it.each([
    ['42703', 'undefined column'],
    ['42P01', 'undefined table'],
    ['42501', 'insufficient privilege'],
    ['42883', 'undefined function'],
    ['0A000', 'feature not supported'],
    ['28P01', 'password authentication failed'],
    ['3D000', 'database does not exist'],
    ['3F000', 'schema does not exist'],
    ['57P04', 'database dropped'],
  ])('%s (%s) is a systemic fault', (code) => {
    expect(classifySqlState(code)).toBe('systemic');
  });

  it.each([
    ['08006', 'connection failure'],
    ['40001', 'serialization failure'],
    ['40P01', 'deadlock'],
    ['53300', 'too many connections'],
    ['53100', 'disk full'],
    ['55P03', 'lock not available'],
    ['57014', 'statement timeout'],
    ['57P01', 'admin shutdown'],
    ['57P03', 'cannot connect now'],
    ['25006', 'read-only transaction during a failover'],
    ['58030', 'I/O error'],
    ['XX000', 'internal error'],
    ['HV000', 'a class nobody decided'],
  ])('%s (%s) is transient', (code) => {
    expect(classifySqlState(code)).toBe('transient');
  });

  it('treats a failure without a SQLSTATE (socket, timeout) as transient', () => {
    expect(classifySqlState(undefined)).toBe('transient');
    expect(classifyDatabaseError(new Error('Query read timeout'))).toBe('transient');
  });

  it('reads the SQLSTATE only from an error report of PostgreSQL, not from a Node error whose code looks like one', () => {
    const socket = Object.assign(new Error('write EPIPE'), { code: 'EPIPE', errno: -32 });
    expect(databaseReportOf(socket)).toBeUndefined();
    expect(classifyDatabaseError(socket)).toBe('transient');
    expect(databaseReportOf({ code: '23505', severity: 'ERROR' })).toBeUndefined();
    expect(
      databaseReportOf(reported('23505', 'duplicate key', { detail: 'Key (id)=(1) exists.' })),
    ).toEqual({
      sqlState: '23505',
      message: 'duplicate key',
      detail: 'Key (id)=(1) exists.',
      table: undefined,
    });
  });

  it('turns each kind into its error, keeping the SQLSTATE, the detail and the table, but not the row', () => {
    const refused = toDatabaseError(
      reported('23514', 'violates check constraint', { detail: 'Failing row contains (1).' }),
    );
    expect(refused).toBeInstanceOf(RejectedChangeError);
    expect(refused).toMatchObject({
      message: 'violates check constraint (SQLSTATE 23514)',
      sqlState: '23514',
    });
    expect(
      toDatabaseError(
        reported('23505', 'duplicate key', { detail: 'Key (id)=(7) already exists.' }),
      ).message,
    ).toBe('duplicate key (SQLSTATE 23505) Key (id)=(7) already exists.');

    const systemic = toDatabaseError(
      reported('42501', 'permission denied for table t', { table: 't' }),
    );
    expect(systemic).toBeInstanceOf(SystemicDatabaseError);
    expect(systemic).toMatchObject({ sqlState: '42501', table: 't', retryable: true });

    const transient = toDatabaseError(reported('57014', 'canceling statement due to timeout'));
    expect(transient).toBeInstanceOf(UnavailableError);

    const fenced = new FencedError('superseded');
    expect(toDatabaseError(fenced)).toBe(fenced);
  });

  it('gives every error class a literal name, whatever a minifier does to its constructor', () => {
    const errors = [
      new ValidationError('a', 'b'),
      new BackpressureError(1, 1),
      new UnavailableError('database', 'x'),
      new ConfigError('X', 'y'),
      new NotFoundError('x'),
      new RejectedChangeError('x', undefined),
      new SystemicDatabaseError('x', undefined, undefined),
      new FencedError('x'),
      new MigrationError('x', {}),
    ];
    expect(errors.map((e) => e.name)).toEqual([
      'ValidationError',
      'BackpressureError',
      'UnavailableError',
      'ConfigError',
      'NotFoundError',
      'RejectedChangeError',
      'SystemicDatabaseError',
      'FencedError',
      'MigrationError',
    ]);
    // A renamed class (as a minifier leaves it) keeps its name.
    const Renamed = class extends NotFoundError {};
    expect(new Renamed('x').name).toBe('NotFoundError');
  });
});
