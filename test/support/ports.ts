/** Free ports for tests; the implementation lives with the services in `local/services/ports.ts`. */
export { freePort, mentionsAddressInUse } from '../../local/services/index.js';
