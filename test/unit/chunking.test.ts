import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Chunk, chunkText } from '../../lambdas/example/chunking.js';

const isSpace = (ch: string | undefined): boolean => ch !== undefined && /\s/.test(ch);

/** Text made of short and occasionally over-long words separated by assorted whitespace. */
const textArb = fc
  .array(
    fc.tuple(
      fc.oneof(
        {
          weight: 6,
          arbitrary: fc.string({
            unit: fc.constantFrom('a', 'b', 'é', '1', '.', '-'),
            minLength: 1,
            maxLength: 8,
          }),
        },
        {
          weight: 1,
          arbitrary: fc.string({ unit: fc.constantFrom('x', 'y'), minLength: 20, maxLength: 60 }),
        },
      ),
      fc.string({
        unit: fc.constantFrom(' ', '\n', '\t', '\u00a0', '  '),
        minLength: 1,
        maxLength: 3,
      }),
    ),
    { maxLength: 80 },
  )
  .chain((parts) =>
    fc
      .tuple(fc.string({ unit: fc.constantFrom(' ', '\n'), maxLength: 2 }), fc.boolean())
      .map(([lead, trailing]) => {
        const body = parts.map(([word, space]) => word + space).join('');
        return lead + (trailing ? body : body.trimEnd());
      }),
  );

const optionsArb = fc
  .integer({ min: 1, max: 120 })
  .chain((size) =>
    fc.record({ size: fc.constant(size), overlap: fc.integer({ min: 0, max: size - 1 }) }),
  );

function wordsOf(text: string): { start: number; end: number }[] {
  return [...text.matchAll(/\S+/g)].map((m) => ({ start: m.index, end: m.index + m[0].length }));
}

describe('chunkText', () => {
  it('splits on word boundaries and repeats trailing words as overlap', () => {
    const text = 'The quick brown fox jumps over the lazy dog';
    expect(chunkText(text, { size: 20, overlap: 10 })).toEqual([
      { chunk_index: 0, text: 'The quick brown fox', char_start: 0, char_end: 19 },
      { chunk_index: 1, text: 'brown fox jumps over', char_start: 10, char_end: 30 },
      { chunk_index: 2, text: 'jumps over the lazy', char_start: 20, char_end: 39 },
      { chunk_index: 3, text: 'the lazy dog', char_start: 31, char_end: 43 },
    ]);
  });

  it('without overlap, chunks follow one another', () => {
    const text = 'one two three four five';
    expect(chunkText(text, { size: 9, overlap: 0 }).map((c) => c.text)).toEqual([
      'one two',
      'three',
      'four five',
    ]);
  });

  it('splits a word longer than the size into pieces of at most the size', () => {
    const text = 'see pneumonoultramicroscopicsilicovolcanoconiosis now';
    expect(chunkText(text, { size: 20, overlap: 5 }).map((c) => c.text)).toEqual([
      'see',
      'pneumonoultramicrosc',
      'opicsilicovolcanocon',
      'iosis now',
    ]);
  });

  it('cuts one unbroken megabyte into chunks of the size, never inside a surrogate pair', () => {
    const word = 'ab😀'.repeat(262_144);
    const chunks = chunkText(word, { size: 999, overlap: 100 });
    expect(Math.max(...chunks.map((c) => c.text.length))).toBeLessThanOrEqual(999);
    expect(chunks.map((c) => c.text).join('')).toBe(word);
    const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
    expect(chunks.filter((c) => loneSurrogate.test(c.text))).toEqual([]);
  });

  it('keeps line breaks inside a chunk and drops leading and trailing whitespace', () => {
    expect(chunkText('\n\n  Title\n\nBody text.  \n', { size: 100, overlap: 10 })).toEqual([
      { chunk_index: 0, text: 'Title\n\nBody text.', char_start: 4, char_end: 21 },
    ]);
  });

  it('gives no chunks for empty or whitespace-only text', () => {
    expect(chunkText('', { size: 10, overlap: 2 })).toEqual([]);
    expect(chunkText(' \n\t\u00a0 ', { size: 10, overlap: 2 })).toEqual([]);
  });

  it('rejects a size or overlap that cannot work', () => {
    expect(() => chunkText('a', { size: 0, overlap: 0 })).toThrow(RangeError);
    expect(() => chunkText('a', { size: 1.5, overlap: 0 })).toThrow(RangeError);
    expect(() => chunkText('a', { size: 10, overlap: 10 })).toThrow(/overlap/);
    expect(() => chunkText('a', { size: 10, overlap: -1 })).toThrow(/overlap/);
  });

  describe('properties', () => {
    it('each chunk is exactly its slice of the text, indexed in order', () => {
      fc.assert(
        fc.property(textArb, optionsArb, (text, options) => {
          const chunks = chunkText(text, options);
          chunks.forEach((chunk, i) => {
            expect(chunk.chunk_index).toBe(i);
            expect(chunk.text).toBe(text.slice(chunk.char_start, chunk.char_end));
            expect(chunk.text.length).toBeGreaterThan(0);
          });
        }),
      );
    });

    it('no chunk starts or ends inside a word no longer than the size, or on whitespace', () => {
      fc.assert(
        fc.property(textArb, optionsArb, (text, options) => {
          const words = wordsOf(text);
          const insideLongWord = (at: number) =>
            words.some((w) => w.start < at && at < w.end && w.end - w.start > options.size);
          for (const { char_start: s, char_end: e } of chunkText(text, options)) {
            expect(s === 0 || isSpace(text[s - 1]) || insideLongWord(s)).toBe(true);
            expect(e === text.length || isSpace(text[e]) || insideLongWord(e)).toBe(true);
            expect(isSpace(text[s])).toBe(false);
            expect(isSpace(text[e - 1])).toBe(false);
          }
        }),
      );
    });

    it('chunks cover every word of the text (a long one in pieces), in order', () => {
      fc.assert(
        fc.property(textArb, optionsArb, (text, options) => {
          const chunks = chunkText(text, options);
          const covers = (from: number, to: number) =>
            chunks.some((c) => c.char_start <= from && to <= c.char_end);
          for (const word of wordsOf(text)) {
            if (word.end - word.start <= options.size) {
              expect(covers(word.start, word.end)).toBe(true);
            } else {
              // A word longer than the size is split: each of its characters is in a chunk.
              for (let at = word.start; at < word.end; at++) expect(covers(at, at + 1)).toBe(true);
            }
          }
          for (let i = 1; i < chunks.length; i++) {
            const [prev, next] = [chunks[i - 1] as Chunk, chunks[i] as Chunk];
            expect(next.char_start).toBeGreaterThan(prev.char_start);
            expect(next.char_end).toBeGreaterThan(prev.char_end);
          }
        }),
      );
    });

    it('respects the size', () => {
      fc.assert(
        fc.property(textArb, optionsArb, (text, options) => {
          for (const chunk of chunkText(text, options)) {
            expect(chunk.char_end - chunk.char_start).toBeLessThanOrEqual(options.size);
          }
        }),
      );
    });

    it('neighbours share at most `overlap` characters, and only whole words', () => {
      fc.assert(
        fc.property(textArb, optionsArb, (text, options) => {
          const chunks = chunkText(text, options);
          for (let i = 1; i < chunks.length; i++) {
            const [prev, next] = [chunks[i - 1] as Chunk, chunks[i] as Chunk];
            expect(Math.max(0, prev.char_end - next.char_start)).toBeLessThanOrEqual(
              options.overlap,
            );
          }
        }),
      );
    });

    it('overlaps whenever the last word of a chunk fits in the overlap and leaves room', () => {
      fc.assert(
        fc.property(textArb, optionsArb, (text, options) => {
          const chunks = chunkText(text, options);
          const words = wordsOf(text);
          for (let i = 1; i < chunks.length; i++) {
            const [prev, next] = [chunks[i - 1] as Chunk, chunks[i] as Chunk];
            const lastIndex = words.findIndex((w) => w.end === prev.char_end);
            const last = words[lastIndex];
            const following = words[lastIndex + 1];
            if (last === undefined || following === undefined || last.start === prev.char_start)
              continue;
            const fits =
              last.end - last.start <= options.overlap &&
              following.end - last.start <= options.size;
            if (fits) expect(next.char_start).toBeLessThanOrEqual(last.start);
          }
        }),
      );
    });

    it('is deterministic', () => {
      fc.assert(
        fc.property(textArb, optionsArb, (text, options) => {
          expect(chunkText(text, options)).toEqual(chunkText(text, options));
        }),
      );
    });
  });
});
