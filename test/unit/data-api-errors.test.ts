import {
  AccessDeniedException,
  DatabaseErrorException,
  DatabaseResumingException,
  StatementTimeoutException,
} from '@aws-sdk/client-rds-data';
import { describe, expect, it } from 'vitest';
import { classifyDatabaseError, toDatabaseError } from '../../lambdas/core/db-errors.js';
import {
  RejectedChangeError,
  SystemicDatabaseError,
  UnavailableError,
} from '../../lambdas/core/errors.js';

const databaseError = (message: string) => new DatabaseErrorException({ $metadata: {}, message });

describe('Data API errors', () => {
  it('a PostgreSQL refusal relayed by the Data API is refused by its SQLSTATE, with its detail', () => {
    const error = toDatabaseError(
      databaseError(
        'ERROR: insert or update on table "document_chunks" violates foreign key constraint "fk"\n  Detail: Key (document_uuid)=(x) is not present.; SQLState: 23503',
      ),
    );
    expect(error).toBeInstanceOf(RejectedChangeError);
    expect(error.message).toContain('SQLSTATE 23503');
    expect(error.message).toContain('Key (document_uuid)=(x)');
  });

  it('a missing column relayed by the Data API is systemic', () => {
    expect(
      classifyDatabaseError(databaseError('ERROR: column "x" does not exist; SQLState: 42703')),
    ).toBe('systemic');
  });

  it('a resuming Aurora Serverless v2 database is transient and says so', () => {
    const error = toDatabaseError(
      new DatabaseResumingException({ $metadata: {}, message: 'resuming' }),
    );
    expect(error).toBeInstanceOf(UnavailableError);
    expect(error.message).toContain('resuming from auto-pause');
  });

  it('a statement timeout is transient and a denied access is systemic', () => {
    expect(
      toDatabaseError(new StatementTimeoutException({ $metadata: {}, message: 't' })),
    ).toBeInstanceOf(UnavailableError);
    expect(
      toDatabaseError(new AccessDeniedException({ $metadata: {}, message: 'no' })),
    ).toBeInstanceOf(SystemicDatabaseError);
  });
});
