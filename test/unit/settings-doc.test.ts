import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ENGINE_SETTINGS } from '../../lambdas/core/settings.js';
import { DEPLOY_GUIDE, documentedTable, settingsTable } from '../../scripts/settings-doc.js';

describe('the settings table of the deploy guide', () => {
  it('is the one lambdas/core/settings.ts generates (regenerate: npx tsx scripts/settings-doc.ts --write)', () => {
    expect(documentedTable(readFileSync(DEPLOY_GUIDE, 'utf8'))).toBe(settingsTable());
  });

  it('names every engine setting once, by a distinct variable and context name', () => {
    const settings = Object.values(ENGINE_SETTINGS);
    expect(new Set(settings.map((s) => s.env)).size).toBe(settings.length);
    expect(new Set(settings.map((s) => s.context)).size).toBe(settings.length);
    for (const s of settings) {
      if (s.kind === 'integer') {
        expect(s.default, s.env).toBeGreaterThanOrEqual(s.min);
        expect(s.default, s.env).toBeLessThanOrEqual(s.max);
      } else {
        expect(s.pattern.test(s.default), s.env).toBe(true);
      }
    }
  });
});
