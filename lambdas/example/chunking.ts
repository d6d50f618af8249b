/**
 * Splits a document's text into overlapping chunks for the example pipeline (`process-document`).
 * Pure and deterministic: the same text and options always give the same chunks, which is what
 * lets a retried step derive the same chunk ids.
 */

export interface ChunkOptions {
  /** Most characters (UTF-16 code units) in a chunk; a word longer than this is split. */
  readonly size: number;
  /** Most characters a chunk shares with the one before it, rounded down to whole words. */
  readonly overlap: number;
}

export interface Chunk {
  readonly chunk_index: number;
  /** Exactly `text.slice(char_start, char_end)` of the document. */
  readonly text: string;
  readonly char_start: number;
  readonly char_end: number;
}

interface Word {
  readonly start: number;
  readonly end: number;
}

/**
 * Chunks `text` on word boundaries (a word is a run of non-whitespace characters): each chunk
 * starts at the start of a word and ends at the end of one, holds as many whole words as fit in
 * `size` characters, and repeats the trailing words of the previous chunk that fit in `overlap`
 * characters. A word longer than `size` (a megabyte without a space, say) is first cut into
 * pieces of `size` characters (never inside a surrogate pair), which count as words, so that no
 * chunk is longer than `size`. Offsets count UTF-16 code units, as `String.prototype.slice` does.
 * Empty or whitespace-only text has no chunks.
 *
 * @throws RangeError when `size` is not a positive integer or `overlap` is not an integer in [0, size).
 */
export function chunkText(text: string, options: ChunkOptions): Chunk[] {
  const { size, overlap } = options;
  if (!Number.isSafeInteger(size) || size < 1) {
    throw new RangeError(`chunk size must be a positive integer, got ${size}`);
  }
  if (!Number.isSafeInteger(overlap) || overlap < 0 || overlap >= size) {
    throw new RangeError(`chunk overlap must be an integer from 0 to ${size - 1}, got ${overlap}`);
  }

  const words: Word[] = [];
  for (const match of text.matchAll(/\S+/g)) {
    const end = match.index + match[0].length;
    for (let start = match.index; start < end; ) {
      let pieceEnd = Math.min(end, start + size);
      // A piece must not end between the halves of a surrogate pair (unless it would be empty).
      if (pieceEnd < end && pieceEnd - start > 1 && isHighSurrogate(text.charCodeAt(pieceEnd - 1)))
        pieceEnd--;
      words.push({ start, end: pieceEnd });
      start = pieceEnd;
    }
  }

  const chunks: Chunk[] = [];
  let first = 0;
  while (first < words.length) {
    const start = wordAt(words, first).start;
    let last = first;
    while (last + 1 < words.length && wordAt(words, last + 1).end - start <= size) last++;
    const end = wordAt(words, last).end;
    chunks.push({
      chunk_index: chunks.length,
      text: text.slice(start, end),
      char_start: start,
      char_end: end,
    });
    if (last + 1 >= words.length) break;
    first = nextFirst(words, first, last, size, overlap);
  }
  return chunks;
}

/**
 * The first word of the chunk after the one spanning words `first..last`: the earliest word after
 * `first` such that the repeated words fit in `overlap` and the next chunk still reaches a new word
 * (otherwise it would repeat only what is already chunked). `last + 1` always qualifies.
 */
function nextFirst(
  words: readonly Word[],
  first: number,
  last: number,
  size: number,
  overlap: number,
): number {
  const end = wordAt(words, last).end;
  const nextEnd = wordAt(words, last + 1).end;
  for (let candidate = first + 1; candidate <= last; candidate++) {
    const start = wordAt(words, candidate).start;
    if (end - start <= overlap && nextEnd - start <= size) return candidate;
  }
  return last + 1;
}

function wordAt(words: readonly Word[], index: number): Word {
  const word = words[index];
  if (word === undefined) throw new RangeError(`no word at index ${index}`);
  return word;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}
