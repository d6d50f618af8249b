/**
 * The tables the deployed functions serve, named in one place for the whole runtime: the buffer
 * validates against them, `read` resolves with them and `migrate` checks the database against
 * them. Here the shipped schema (`lambdas/schema/`, the example pipeline's tables); a deployment
 * of your own points this at its own registry and migrations.
 */
export { pipelineRegistry as deployedTables } from '../schema/tables.js';
