/**
 * `write`: `{ changes: [...] }` → `{ accepted, changesetId }`, once Redis holds the changeset
 * (G1). Fails with ValidationError (G6), BackpressureError (G5) or UnavailableError.
 */
import { getWriter } from '../runtime/container.js';
import { lambdaHandler } from '../runtime/invocation.js';

export const handler = lambdaHandler(async (event) => {
  const writer = await getWriter();
  return await writer.write(event);
});
