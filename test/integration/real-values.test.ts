/**
 * A `real` (float4) column reads the same before the drain as after it (G4): the value is
 * normalised at validation to what PostgreSQL stores and node-postgres returns.
 */
import { describe, expect, it } from 'vitest';
import { document, drainAll, useTestEngines, uuid } from '../support/engine.js';

const { engine } = useTestEngines();

const CONFIDENCES = [
  0.9999999999,
  0.1,
  1 / 3,
  2 / 3,
  0.123456789,
  0.000001234567,
  1e-30,
  0.7,
  0.99999994,
  0,
  1,
  ...Array.from({ length: 40 }, (_, i) => ((i * 7919) % 10_007) / 10_007),
];

describe('real columns', () => {
  it('read returns the same real value before the drain and after it, as PostgreSQL stores it', async () => {
    const { spillway, direct } = await engine('real-values');
    const doc = uuid();
    const mentions = CONFIDENCES.map((confidence) => ({
      entity_uuid: uuid(),
      document_uuid: doc,
      entity_type: 'date',
      text: 'March 3',
      confidence,
    }));
    await spillway.write({
      changes: [
        document(doc),
        ...mentions.map((record) => ({ op: 'upsert', table: 'entity_mentions', record })),
      ],
    });
    const readAll = () =>
      Promise.all(
        mentions.map(async (m) => {
          const { record } = await spillway.read({
            table: 'entity_mentions',
            key: { entity_uuid: m.entity_uuid },
          });
          return record?.confidence;
        }),
      );
    const before = await readAll();
    await drainAll(spillway);
    const after = await readAll();
    const { rows } = await direct.query<{ entity_uuid: string; confidence: number }>(
      'SELECT entity_uuid, confidence FROM entity_mentions WHERE document_uuid = $1',
      [doc],
    );
    const stored = new Map(rows.map((r) => [r.entity_uuid, r.confidence]));
    expect(before).toEqual(after);
    expect(after).toEqual(mentions.map((m) => stored.get(m.entity_uuid)));
    expect(before[0]).toBe(1);
  });
});
