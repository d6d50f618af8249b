/**
 * `read`: `{ table, key }` → `{ record, pending }`, the latest acknowledged state of the row,
 * synced or not (G4).
 */
import { getSpillway } from '../runtime/container.js';
import { lambdaHandler } from '../runtime/invocation.js';

export const handler = lambdaHandler(async (event) => {
  const spillway = await getSpillway();
  return await spillway.read(event);
});
