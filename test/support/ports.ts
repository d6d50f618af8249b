/** Free ports for tests; the implementation lives with the services in `local/services/ports.ts`. */
export { freePort } from '../../local/services/index.js';
