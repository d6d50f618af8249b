/**
 * Entity extraction for the example pipeline (`extract-entities`): simple, deterministic rules
 * rather than a model, so a retried step finds exactly the same mentions at the same offsets.
 * Offsets count UTF-16 code units of the text given, as `String.prototype.slice` does.
 */

export type EntityType = 'email' | 'phone' | 'date' | 'money' | 'case_number' | 'organization';

export interface EntityMention {
  readonly entity_type: EntityType;
  /** Exactly `text.slice(start_offset, end_offset)`. */
  readonly text: string;
  readonly start_offset: number;
  readonly end_offset: number;
  /** How much the rule that found it is trusted, in [0, 1]. */
  readonly confidence: number;
}

export interface Sentence {
  readonly text: string;
  readonly start: number;
  readonly end: number;
}

interface Rule {
  readonly type: EntityType;
  readonly pattern: RegExp;
  readonly confidence: number;
  /** Rejects a match the pattern alone cannot rule out. */
  readonly accept?: (match: string) => boolean;
}

const MONTH =
  '(?:January|February|March|April|May|June|July|August|September|October|November|December|' +
  'Jan\\.?|Feb\\.?|Mar\\.?|Apr\\.?|Jun\\.?|Jul\\.?|Aug\\.?|Sept?\\.?|Oct\\.?|Nov\\.?|Dec\\.?)';
const ORDINAL = '(?:st|nd|rd|th)?';
const AMOUNT = '(?:\\d{1,3}(?:,\\d{3})+|\\d+)(?:\\.\\d{1,2})?';
const SCALE = '(?:\\s(?:thousand|million|billion|trillion))?';
const CURRENCY_CODE = '(?:USD|EUR|GBP|JPY|CHF|CAD|AUD|CNY|INR)';

const RULES: readonly Rule[] = [
  {
    type: 'email',
    pattern:
      /(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])/g,
    confidence: 0.95,
  },
  {
    // Federal docket numbers ("1:23-cv-04567", optionally with the judge's initials), with or
    // without a "Case No." prefix, and prefixed docket numbers such as "No. 22-1234".
    type: 'case_number',
    pattern: new RegExp(
      '(?:\\b(?:Case|Civil Action|Criminal Action|Docket|Appeal)\\s+No\\.?\\s*|\\bNo\\.\\s*)?' +
        '\\b\\d{1,2}:\\d{2}-[a-z]{2,4}-\\d{3,6}(?:-[A-Z]{2,4})*\\b' +
        '|\\b(?:(?:Case|Civil Action|Criminal Action|Docket|Appeal)\\s+No\\.?|No\\.)\\s*' +
        '\\d{2,4}-(?:[A-Za-z]{1,4}-)?\\d{1,6}\\b',
      'g',
    ),
    confidence: 0.9,
  },
  {
    type: 'date',
    pattern: new RegExp(
      [
        '\\b\\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\\d|3[01])(?![\\w-])',
        `\\b${MONTH}\\s+\\d{1,2}${ORDINAL},?\\s+\\d{4}\\b`,
        `\\b\\d{1,2}${ORDINAL}\\s+${MONTH}\\s+\\d{4}\\b`,
        '\\b\\d{1,2}([/.-])\\d{1,2}\\1\\d{4}\\b',
      ].join('|'),
      'g',
    ),
    confidence: 0.9,
    accept: plausibleNumericDate,
  },
  {
    type: 'money',
    pattern: new RegExp(
      `(?:(?<![\\w$])(?:US|A|C)?[$€£¥]\\s?${AMOUNT}${SCALE}` +
        `|\\b${CURRENCY_CODE}\\s?${AMOUNT}${SCALE}` +
        `|\\b${AMOUNT}${SCALE}\\s${CURRENCY_CODE})\\b`,
      'g',
    ),
    confidence: 0.9,
  },
  {
    // Three groups of digits separated by spaces, dots or dashes, the first optionally in
    // brackets and after a country code; 10 to 15 digits in all (E.164 allows at most 15).
    type: 'phone',
    pattern:
      /(?<![\w+/.,:-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}(?![\w/:]|[.,-]\d)/g,
    confidence: 0.8,
    accept: (match) => {
      const digits = match.replace(/\D/g, '').length;
      return digits >= 10 && digits <= 15;
    },
  },
];

/** Company-form suffixes that mark the end of an organisation's name. */
const ORGANIZATION_SUFFIXES = new Set([
  'Inc',
  'Inc.',
  'INC',
  'INC.',
  'Incorporated',
  'LLC',
  'L.L.C.',
  'Ltd',
  'Ltd.',
  'LTD',
  'LTD.',
  'Limited',
  'Corp',
  'Corp.',
  'CORP',
  'CORP.',
  'Corporation',
  'Co.',
  'GmbH',
  'AG',
  'LLP',
  'L.L.P.',
  'LP',
  'L.P.',
  'PLC',
  'plc',
  'S.A.',
  'N.V.',
  'B.V.',
  'S.p.A.',
]);
/** Lower-case words that may sit inside a name ("Bank of America Corp.") but never start or end one. */
const NAME_CONNECTORS = new Set(['&', 'of', 'and', 'for', 'de']);
/** Capitalised words that start sentences or name a party's role rather than the party. */
const NOT_NAME_STARTS = new Set([
  'A',
  'An',
  'The',
  'This',
  'That',
  'In',
  'On',
  'At',
  'By',
  'For',
  'From',
  'To',
  'With',
  'And',
  'But',
  'Or',
  'If',
  'When',
  'While',
  'After',
  'Before',
  'Between',
  'Against',
  'Plaintiff',
  'Plaintiffs',
  'Defendant',
  'Defendants',
  'Petitioner',
  'Respondent',
  'Appellant',
  'Appellee',
  'Counsel',
  'Yesterday',
  'Today',
  'Then',
  'However',
  'Also',
  'Meanwhile',
  'Under',
  'Per',
  'As',
  'Upon',
  'Pursuant',
  'Whereas',
  'Each',
  'Every',
  'Our',
  'Their',
  'Its',
  'We',
  'They',
  'It',
]);

/**
 * Finds emails, phone numbers, dates, money amounts, court case numbers and organisations with
 * a legal suffix. The mentions are sorted by offset and never overlap: where two rules claim the
 * same characters, the earlier, then longer, then more trusted mention wins.
 */
export function extractEntities(text: string): EntityMention[] {
  const candidates: EntityMention[] = [];
  for (const rule of RULES) {
    for (const match of text.matchAll(rule.pattern)) {
      const found = match[0];
      if (rule.accept && !rule.accept(found)) continue;
      candidates.push({
        entity_type: rule.type,
        text: found,
        start_offset: match.index,
        end_offset: match.index + found.length,
        confidence: rule.confidence,
      });
    }
  }
  candidates.push(...organizations(text));

  candidates.sort(
    (a, b) =>
      a.start_offset - b.start_offset ||
      b.end_offset - a.end_offset ||
      b.confidence - a.confidence ||
      a.entity_type.localeCompare(b.entity_type),
  );
  const chosen: EntityMention[] = [];
  let end = 0;
  for (const candidate of candidates) {
    if (candidate.start_offset < end) continue;
    chosen.push(candidate);
    end = candidate.end_offset;
  }
  return chosen;
}

/** Runs of capitalised words ending in a company-form suffix ("Acme Widgets, Inc."). */
function organizations(text: string): EntityMention[] {
  const tokens = [...text.matchAll(/\S+/g)].map((m) => ({ word: m[0], start: m.index }));
  const found: EntityMention[] = [];
  tokens.forEach((token, i) => {
    const suffix = organizationSuffix(token.word);
    if (suffix === undefined) return;

    const name: { word: string; start: number }[] = [];
    for (let j = i - 1; j >= 0; j--) {
      const previous = tokens[j];
      if (previous === undefined) break;
      // Only the word right before the suffix may end in a comma ("Acme, Inc.").
      const bare = j === i - 1 ? previous.word.replace(/,$/, '') : previous.word;
      const opening = /^["'([\u201c\u2018]+/.exec(bare)?.[0] ?? '';
      const word = bare.slice(opening.length);
      if (organizationSuffix(word) !== undefined) break;
      if (!isNameWord(word) && !NAME_CONNECTORS.has(word)) break;
      name.unshift({ word, start: previous.start + opening.length });
      // An opening bracket or quote starts the name.
      if (opening !== '') break;
    }
    while (
      name[0] !== undefined &&
      (NAME_CONNECTORS.has(name[0].word) || NOT_NAME_STARTS.has(name[0].word))
    ) {
      name.shift();
    }
    const start = name[0]?.start;
    if (start === undefined) return;
    const end = token.start + suffix.length;
    found.push({
      entity_type: 'organization',
      text: text.slice(start, end),
      start_offset: start,
      end_offset: end,
      confidence: 0.7,
    });
  });
  return found;
}

/** The suffix a token is, without trailing punctuation that belongs to the sentence. */
function organizationSuffix(token: string): string | undefined {
  const bare = token.replace(/[,;:)"'\u201d\u2019]+$/, '');
  if (ORGANIZATION_SUFFIXES.has(bare)) return bare;
  const withoutStop = bare.replace(/[.!?]$/, '');
  return ORGANIZATION_SUFFIXES.has(withoutStop) ? withoutStop : undefined;
}

/** A capitalised word, a number-led name ("3M") or initials ("U.S."), not ending a sentence. */
function isNameWord(word: string): boolean {
  if (/^(?:\p{Lu}\.)+$/u.test(word)) return true;
  return /^[\p{Lu}\p{N}][\p{L}\p{N}&'\u2019-]*$/u.test(word) && /\p{L}/u.test(word);
}

function plausibleNumericDate(match: string): boolean {
  const numeric = /^(\d{1,2})[/.-](\d{1,2})[/.-]\d{4}$/.exec(match);
  if (numeric === null) return true;
  const [first, second] = [Number(numeric[1]), Number(numeric[2])];
  // Either day/month or month/day: both must be days, and one of them a month.
  return first >= 1 && second >= 1 && first <= 31 && second <= 31 && (first <= 12 || second <= 12);
}

/** Words whose final period abbreviates rather than ends a sentence. */
const ABBREVIATIONS = new Set([
  'no',
  'nos',
  'inc',
  'corp',
  'co',
  'ltd',
  'mr',
  'mrs',
  'ms',
  'dr',
  'prof',
  'st',
  'jr',
  'sr',
  'v',
  'vs',
  'etc',
  'e.g',
  'i.e',
  'al',
  'jan',
  'feb',
  'mar',
  'apr',
  'jun',
  'jul',
  'aug',
  'sep',
  'sept',
  'oct',
  'nov',
  'dec',
  'u.s',
  'l.l.c',
  'l.l.p',
  'l.p',
  's.a',
  'n.v',
  'b.v',
  'art',
  'sec',
  'para',
  'cf',
  'fig',
]);

/**
 * The sentences of `text`, with offsets, trimmed of surrounding whitespace. A sentence ends at
 * '.', '!' or '?' (and any closing quotes or brackets) followed by whitespace, except after a
 * known abbreviation ("No.", "Inc.", "v.") or an initial ("J."); a blank line also ends one.
 */
export function sentencesOf(text: string): Sentence[] {
  const sentences: Sentence[] = [];
  const push = (from: number, to: number): void => {
    const slice = text.slice(from, to);
    const lead = slice.length - slice.trimStart().length;
    const trimmed = slice.trim();
    if (trimmed !== '') {
      sentences.push({ text: trimmed, start: from + lead, end: from + lead + trimmed.length });
    }
  };

  let from = 0;
  const boundary = /[.!?]+["'\u201d\u2019)\]]*(?=\s)|\n[ \t]*\n/g;
  for (const match of text.matchAll(boundary)) {
    const end = match.index + match[0].length;
    if (match[0].startsWith('.') && isAbbreviation(text, match.index)) continue;
    push(from, end);
    from = end;
  }
  push(from, text.length);
  return sentences;
}

function isAbbreviation(text: string, periodIndex: number): boolean {
  const before = text.slice(0, periodIndex);
  const word = /[\p{L}.]*$/u.exec(before)?.[0] ?? '';
  if (/^\p{Lu}$/u.test(word)) return true;
  return ABBREVIATIONS.has(word.toLowerCase());
}

/**
 * The mentions of each sentence, in sentence order, leaving out sentences without any.
 * A mention belongs to the sentence its first character is in.
 */
export function entitiesBySentence<T extends EntityMention>(
  text: string,
  mentions: readonly T[],
): { sentence: Sentence; mentions: T[] }[] {
  const groups = sentencesOf(text).map((sentence) => ({ sentence, mentions: [] as T[] }));
  for (const mention of mentions) {
    const group =
      groups.find((g) => mention.start_offset < g.sentence.end) ?? groups[groups.length - 1];
    group?.mentions.push(mention);
  }
  return groups.filter((g) => g.mentions.length > 0);
}

/**
 * The pairs of mentions that share a sentence, each pair once with the earlier mention first:
 * the `co_occurs_with` relationships. Two mentions of the same thing (same type and text) are
 * not paired with each other.
 */
export function coOccurringPairs<T extends EntityMention>(
  text: string,
  mentions: readonly T[],
): [source: T, target: T][] {
  const pairs: [T, T][] = [];
  for (const { mentions: group } of entitiesBySentence(text, mentions)) {
    const ordered = [...group].sort((a, b) => a.start_offset - b.start_offset);
    ordered.forEach((source, i) => {
      for (const target of ordered.slice(i + 1)) {
        if (source.entity_type === target.entity_type && source.text === target.text) continue;
        pairs.push([source, target]);
      }
    });
  }
  return pairs;
}
