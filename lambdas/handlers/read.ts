/**
 * `read`: `{ table, key }` → `{ record, pending }`, the latest acknowledged state of one row,
 * synced or not (G4); or `{ changesets: [version, ...] }` → `{ changesets: [{ version, status,
 * reason? }] }`, where changesets stand by the versions `write` returned; or `{ table, where:
 * { <foreign-key column>: value }, limit?, cursor? }` → `{ records, pending, nextCursor }`, a
 * parent's children, pending changes included.
 */
import { isParentRead } from '../core/parent-read.js';
import { isStatusRequest, parseStatusRequest } from '../core/status-request.js';
import { getReader } from '../runtime/container.js';
import { lambdaHandler } from '../runtime/invocation.js';

export const handler = lambdaHandler(async (event) => {
  if (isParentRead(event)) {
    const reader = await getReader();
    return await reader.readChildren(event);
  }
  if (isStatusRequest(event)) {
    const versions = parseStatusRequest(event);
    const reader = await getReader();
    return { changesets: await reader.changesetStatus(versions) };
  }
  const reader = await getReader();
  return await reader.read(event);
});
