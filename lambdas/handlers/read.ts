/**
 * `read`: `{ table, key }` → `{ record, pending }`, the latest acknowledged state of the row,
 * synced or not (G4).
 */
import { getSpillway } from '../io/container.js';
import { lambdaHandler } from '../io/invocation.js';

export const handler = lambdaHandler(async (event) => {
  const spillway = await getSpillway();
  return await spillway.read(event);
});
