/** Free ports for tests; the implementation lives with the services in `local/ports.ts`. */
export { freePort, mentionsAddressInUse } from '../../local/ports.js';
