/**
 * Custom resource: runs the `migrate` function on create and update, so that a deployment
 * applies pending migrations before it completes, and fails with the migration's own error
 * message when one fails (the Provider framework reports a thrown error as the reason).
 *
 * It lives outside the VPC: all it does is call the Lambda API, which the VPC has no route to.
 */
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import {
  type CustomResourceEvent,
  type CustomResourceResult,
  stringProperty,
} from './custom-resource.js';

const PHYSICAL_RESOURCE_ID = 'spillway-migrations';
/** CloudFormation caps a custom resource response at 4 KB. */
const MAX_DATA_CHARS = 1_000;

const lambda = new LambdaClient({});

export async function handler(event: CustomResourceEvent): Promise<CustomResourceResult> {
  // Never undo migrations: deleting the stack must leave the data and its schema alone.
  if (event.RequestType === 'Delete') {
    return { PhysicalResourceId: event.PhysicalResourceId ?? PHYSICAL_RESOURCE_ID };
  }
  const functionName = stringProperty(event, 'MigrateFunctionName');
  const out = await lambda.send(
    new InvokeCommand({ FunctionName: functionName, Payload: new TextEncoder().encode('{}') }),
  );
  const text = new TextDecoder().decode(out.Payload ?? new Uint8Array());
  if (out.FunctionError !== undefined) {
    throw new Error(`migrate failed: ${describeError(text)}`);
  }
  const result = parseResult(text);
  return {
    PhysicalResourceId: PHYSICAL_RESOURCE_ID,
    Data: {
      Applied: result.applied.join(' ').slice(0, MAX_DATA_CHARS),
      Skipped: String(result.skipped.length),
    },
  };
}

/** `errorType: errorMessage` from Lambda's error payload, or the raw payload. */
function describeError(payload: string): string {
  try {
    const parsed: unknown = JSON.parse(payload);
    if (typeof parsed === 'object' && parsed !== null && 'errorMessage' in parsed) {
      const type = 'errorType' in parsed ? String(parsed.errorType) : 'Error';
      return `${type}: ${String(parsed.errorMessage)}`;
    }
  } catch {
    // Not JSON: report it as it came.
  }
  return payload.slice(0, MAX_DATA_CHARS);
}

function parseResult(payload: string): { applied: string[]; skipped: string[] } {
  const parsed: unknown = JSON.parse(payload);
  if (
    typeof parsed === 'object' &&
    parsed !== null &&
    'applied' in parsed &&
    'skipped' in parsed &&
    Array.isArray(parsed.applied) &&
    Array.isArray(parsed.skipped)
  ) {
    return { applied: parsed.applied.map(String), skipped: parsed.skipped.map(String) };
  }
  throw new Error(`migrate returned an unexpected result: ${payload.slice(0, MAX_DATA_CHARS)}`);
}
