import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FUNCTION_NAMES, FUNCTIONS } from '../../lambdas/functions.js';
import { localFunctions } from '../../local/functions.js';

describe('the manifest of functions', () => {
  it('is what the local runner serves, with the same timeouts', () => {
    const local = localFunctions({ syncTimeoutMs: 1_000 });
    expect(Object.keys(local)).toEqual(FUNCTION_NAMES);
    for (const name of FUNCTION_NAMES) {
      if (name !== 'sync')
        expect(local[name].timeoutMs).toBe(FUNCTIONS[name].timeoutSeconds * 1000);
    }
  });

  it("is the README's invoke contract, function by function", () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const name of FUNCTION_NAMES) expect(readme, name).toContain(`| \`${name}\` |`);
  });
});
