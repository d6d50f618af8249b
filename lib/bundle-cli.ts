/**
 * Builds one bundle (`buildBundle`) from the JSON `BundleRequest` given as the only argument:
 * what `SpillwayFunction` runs, in a child process, when `cdk synth` bundles a function
 * (`bundleSynchronously` in `function.ts`).
 */
import { type BundleRequest, buildBundle } from './bundle.js';

const [argument] = process.argv.slice(2);
if (argument === undefined) throw new Error('usage: bundle-cli.ts <BundleRequest as JSON>');
await buildBundle(JSON.parse(argument) as BundleRequest);
