import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  coOccurringPairs,
  type EntityMention,
  type EntityType,
  entitiesBySentence,
  extractEntities,
  sentencesOf,
} from '../../lambdas/example/entities.js';

/** `[type, text]` of each mention, in order. */
function found(text: string): [EntityType, string][] {
  return extractEntities(text).map((e) => [e.entity_type, e.text]);
}

const FILING =
  'In Acme Widgets, Inc. v. Globex LLC, Case No. 1:23-cv-04567, filed March 5, 2024, the ' +
  'plaintiff seeks $1,234,567.89. Contact jane.doe@acme-widgets.com or (212) 555-0100.';

describe('extractEntities', () => {
  it('finds each kind of entity in a filing, with offsets into the text', () => {
    expect(extractEntities(FILING)).toEqual([
      {
        entity_type: 'organization',
        text: 'Acme Widgets, Inc.',
        start_offset: 3,
        end_offset: 21,
        confidence: 0.7,
      },
      {
        entity_type: 'organization',
        text: 'Globex LLC',
        start_offset: 25,
        end_offset: 35,
        confidence: 0.7,
      },
      {
        entity_type: 'case_number',
        text: 'Case No. 1:23-cv-04567',
        start_offset: 37,
        end_offset: 59,
        confidence: 0.9,
      },
      {
        entity_type: 'date',
        text: 'March 5, 2024',
        start_offset: 67,
        end_offset: 80,
        confidence: 0.9,
      },
      {
        entity_type: 'money',
        text: '$1,234,567.89',
        start_offset: 102,
        end_offset: 115,
        confidence: 0.9,
      },
      {
        entity_type: 'email',
        text: 'jane.doe@acme-widgets.com',
        start_offset: 125,
        end_offset: 150,
        confidence: 0.95,
      },
      {
        entity_type: 'phone',
        text: '(212) 555-0100',
        start_offset: 154,
        end_offset: 168,
        confidence: 0.8,
      },
    ]);
  });

  it('finds emails, not their neighbouring punctuation', () => {
    expect(found('Write to legal+filings@firm.co.uk, or j_doe@example.org.')).toEqual([
      ['email', 'legal+filings@firm.co.uk'],
      ['email', 'j_doe@example.org'],
    ]);
    expect(found('not@an-email and @handle')).toEqual([]);
  });

  it('finds phone numbers of ten to fifteen digits in common notations', () => {
    expect(
      found('Call +1 212-555-0100, 212.555.0199, +44 20 7946 0958 or (020) 7946 0000 today.'),
    ).toEqual([
      ['phone', '+1 212-555-0100'],
      ['phone', '212.555.0199'],
      ['phone', '+44 20 7946 0958'],
      ['phone', '(020) 7946 0000'],
    ]);
  });

  it('does not take short numbers, dates or amounts for phone numbers', () => {
    expect(found('Extension 555-1234, invoice 12.345.678, ref 1234 5678.')).toEqual([]);
  });

  it('finds dates in ISO, written and numeric styles', () => {
    expect(
      found(
        'On 2024-03-05, March 5, 2024, Mar. 5th, 2024, 5 March 2024, Sept. 30 2023, 05/03/2024 and 31.12.2023.',
      ),
    ).toEqual([
      ['date', '2024-03-05'],
      ['date', 'March 5, 2024'],
      ['date', 'Mar. 5th, 2024'],
      ['date', '5 March 2024'],
      ['date', 'Sept. 30 2023'],
      ['date', '05/03/2024'],
      ['date', '31.12.2023'],
    ]);
  });

  it('does not take impossible numeric dates or mixed separators for dates', () => {
    expect(found('Codes 13/13/2024, 2024-13-01, 00/05/2024 and 05/03-2024.')).toEqual([]);
  });

  it('finds money amounts with a symbol or a currency code', () => {
    expect(
      found(
        'Fees of $1,234.56, $500, US$2 million, USD 1,000, 1,000 USD, €500, £75.50 and 2,500 EUR.',
      ),
    ).toEqual([
      ['money', '$1,234.56'],
      ['money', '$500'],
      ['money', 'US$2 million'],
      ['money', 'USD 1,000'],
      ['money', '1,000 USD'],
      ['money', '€500'],
      ['money', '£75.50'],
      ['money', '2,500 EUR'],
    ]);
    expect(found('We counted 1,000 pages and 500 exhibits.')).toEqual([]);
  });

  it('finds court case numbers with and without a prefix', () => {
    expect(
      found(
        'See Case No. 1:23-cv-04567, No. 22-1234, Civil Action No. 2:21-cr-00123-JMF and 3:19-bk-10001.',
      ),
    ).toEqual([
      ['case_number', 'Case No. 1:23-cv-04567'],
      ['case_number', 'No. 22-1234'],
      ['case_number', 'Civil Action No. 2:21-cr-00123-JMF'],
      ['case_number', '3:19-bk-10001'],
    ]);
    expect(found('Item No. 5 of 22-1234 items.')).toEqual([]);
  });

  it('finds organisations as the run of capitalised words before a legal suffix', () => {
    expect(
      found(
        'Yesterday Bank of America Corp. paid Deutsche Bank AG, "Société Générale S.A." and 3M Company Ltd. The Plaintiff sued Initech, Inc.',
      ),
    ).toEqual([
      ['organization', 'Bank of America Corp.'],
      ['organization', 'Deutsche Bank AG'],
      ['organization', 'Société Générale S.A.'],
      ['organization', '3M Company Ltd.'],
      ['organization', 'Initech, Inc.'],
    ]);
  });

  it('ends an organisation at the suffix, leaving the sentence period out', () => {
    expect(extractEntities('Payment went to Globex LLC.')).toEqual([
      {
        entity_type: 'organization',
        text: 'Globex LLC',
        start_offset: 16,
        end_offset: 26,
        confidence: 0.7,
      },
    ]);
  });

  it('does not run two organisations together or take lone suffixes for names', () => {
    expect(found('Acme Inc. and Widget LLC merged.')).toEqual([
      ['organization', 'Acme Inc.'],
      ['organization', 'Widget LLC'],
    ]);
    expect(found('The LLC was dissolved; its Inc. filing lapsed. the inc.')).toEqual([]);
  });

  it('finds nothing in empty or plain text', () => {
    expect(extractEntities('')).toEqual([]);
    expect(extractEntities('the court adjourned until further notice')).toEqual([]);
  });

  const fragments = fc.constantFrom(
    'Acme Widgets, Inc.',
    'Globex LLC',
    'Case No. 1:23-cv-04567',
    'No. 22-1234',
    'March 5, 2024',
    '2024-03-05',
    '05/03/2024',
    '$1,234.56',
    'USD 1,000',
    '€500',
    'jane@acme.com',
    '(212) 555-0100',
    '+44 20 7946 0958',
    'the',
    'court',
    'The',
    'of',
    'and',
    '.',
    ',',
    '1',
    '2024',
    '-',
    '\n\n',
  );
  const documents = fc
    .array(fc.tuple(fragments, fc.constantFrom(' ', '', '\n')), { maxLength: 40 })
    .map((parts) => parts.map(([fragment, gap]) => fragment + gap).join(''));

  it('returns mentions that are slices of the text, sorted and never overlapping', () => {
    fc.assert(
      fc.property(documents, (text) => {
        const mentions = extractEntities(text);
        let end = 0;
        for (const mention of mentions) {
          expect(mention.text).toBe(text.slice(mention.start_offset, mention.end_offset));
          expect(mention.text.length).toBeGreaterThan(0);
          expect(mention.start_offset).toBeGreaterThanOrEqual(end);
          expect(mention.confidence).toBeGreaterThan(0);
          expect(mention.confidence).toBeLessThanOrEqual(1);
          end = mention.end_offset;
        }
        expect(extractEntities(text)).toEqual(mentions);
      }),
    );
  });
});

describe('sentencesOf', () => {
  it('splits at sentence ends, not at abbreviations, initials or decimal points', () => {
    const text =
      'Acme Inc. v. Globex LLC, No. 22-1234, was filed by Mr. J. Smith. It seeks $1.5 million!  ' +
      'Is that all? "Yes." (Noted.)\n\nNew paragraph without a stop\nstill the same sentence';
    expect(sentencesOf(text).map((s) => s.text)).toEqual([
      'Acme Inc. v. Globex LLC, No. 22-1234, was filed by Mr. J. Smith.',
      'It seeks $1.5 million!',
      'Is that all?',
      '"Yes."',
      '(Noted.)',
      'New paragraph without a stop\nstill the same sentence',
    ]);
  });

  it('gives offsets whose slice is the sentence', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom('a', 'B', ' ', '.', '!', '?', '\n', 'No', '"') }),
        (text) => {
          let end = 0;
          for (const sentence of sentencesOf(text)) {
            expect(sentence.text).toBe(text.slice(sentence.start, sentence.end));
            expect(sentence.text).toBe(sentence.text.trim());
            expect(sentence.text).not.toBe('');
            expect(sentence.start).toBeGreaterThanOrEqual(end);
            end = sentence.end;
          }
        },
      ),
    );
  });

  it('gives no sentences for blank text', () => {
    expect(sentencesOf('')).toEqual([]);
    expect(sentencesOf('  \n\n ')).toEqual([]);
  });
});

describe('co-occurrence', () => {
  const text =
    'Acme Inc. paid $500 to Globex LLC on March 5, 2024. Globex LLC wrote to jane@acme.com. ' +
    'Nothing here. Globex LLC thanked Globex LLC.';
  const mentions = extractEntities(text);

  it('groups mentions by the sentence they start in, skipping sentences without any', () => {
    const groups = entitiesBySentence(text, mentions);
    expect(groups.map((g) => g.mentions.map((m) => m.text))).toEqual([
      ['Acme Inc.', '$500', 'Globex LLC', 'March 5, 2024'],
      ['Globex LLC', 'jane@acme.com'],
      ['Globex LLC', 'Globex LLC'],
    ]);
    expect(groups[1]?.sentence.text).toBe('Globex LLC wrote to jane@acme.com.');
  });

  it('pairs every two distinct mentions of a sentence once, earlier first', () => {
    const pairs = coOccurringPairs(text, mentions).map(([a, b]) => `${a.text} -> ${b.text}`);
    expect(pairs).toEqual([
      'Acme Inc. -> $500',
      'Acme Inc. -> Globex LLC',
      'Acme Inc. -> March 5, 2024',
      '$500 -> Globex LLC',
      '$500 -> March 5, 2024',
      'Globex LLC -> March 5, 2024',
      'Globex LLC -> jane@acme.com',
    ]);
  });

  it('keeps whatever else the caller attached to a mention', () => {
    const withIds = mentions.map((m, i) => ({ ...m, entity_uuid: `id-${i}` }));
    const [first] = coOccurringPairs(text, withIds);
    expect(first?.[0].entity_uuid).toBe('id-0');
    expect(first?.[1].entity_uuid).toBe('id-1');
  });

  it('never pairs mentions of different sentences', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('Acme Inc.', 'met', 'Globex LLC', 'on', '2024-03-05', '.', '!'), {
          maxLength: 30,
        }),
        (words) => {
          const doc = words.join(' ');
          const sentences = sentencesOf(doc);
          const sentenceOf = (m: EntityMention) =>
            sentences.findIndex((s) => m.start_offset >= s.start && m.start_offset < s.end);
          for (const [source, target] of coOccurringPairs(doc, extractEntities(doc))) {
            expect(sentenceOf(source)).toBe(sentenceOf(target));
            expect(sentenceOf(source)).toBeGreaterThanOrEqual(0);
            expect(source.start_offset).toBeLessThan(target.start_offset);
          }
        },
      ),
    );
  });
});
