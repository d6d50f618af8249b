/**
 * A SQL script (a migration file) as its statements, for transports that take one statement a
 * call: the RDS Data API prepares every statement, and PostgreSQL refuses a prepared statement
 * of more than one command (42601).
 *
 * The split is PostgreSQL's lexical one, at each `;` outside of `--` and (nested) `/* *\/`
 * comments, '...' strings (with '' inside, and E'...' with backslash escapes), "..." identifiers
 * and $tag$...$tag$ bodies. It does not parse SQL: a `BEGIN ATOMIC ... END` function body, whose
 * semicolons PostgreSQL only knows from its grammar, is not supported (write it with $$ instead).
 */

/** One statement of a script, without its terminating `;`. */
export interface SqlStatement {
  /** From the first character that is not white space or a comment. */
  readonly text: string;
  /** The line of the script (from 1) where `text` starts. */
  readonly line: number;
}

const DOLLAR_TAG = /^\$([A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$/;

/**
 * The statements of `script`, in order; comments and white space between statements dropped,
 * empty statements (`;;`) skipped.
 *
 * @throws SyntaxError when a string, quoted identifier, dollar-quoted body or block comment is
 *   not closed (naming the line it opens on), since its statement would end somewhere else on
 *   the server than here
 */
export function splitSqlScript(script: string): SqlStatement[] {
  const statements: SqlStatement[] = [];
  let start = -1;
  let i = 0;
  const push = (end: number) => {
    if (start < 0) return;
    statements.push({ text: script.slice(start, end).trimEnd(), line: lineAt(script, start) });
    start = -1;
  };
  const unclosed = (what: string, at: number): never => {
    throw new SyntaxError(`${what} opened on line ${lineAt(script, at)} is not closed`);
  };
  while (i < script.length) {
    const c = script[i] as string;
    const next = script[i + 1];
    if (c === '-' && next === '-') {
      const end = script.indexOf('\n', i);
      i = end < 0 ? script.length : end + 1;
      continue;
    }
    if (c === '/' && next === '*') {
      i = blockCommentEnd(script, i) ?? unclosed('a /* comment', i);
      continue;
    }
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === ';') {
      push(i);
      i++;
      continue;
    }
    if (start < 0) start = i;
    if (c === "'") {
      const escapes = i > 0 && /[eE]/.test(script[i - 1] as string) && !isWordChar(script[i - 2]);
      i = quotedEnd(script, i, "'", escapes) ?? unclosed('a string', i);
    } else if (c === '"') {
      i = quotedEnd(script, i, '"', false) ?? unclosed('a quoted identifier', i);
    } else if (c === '$' && !isWordChar(script[i - 1])) {
      const tag = DOLLAR_TAG.exec(script.slice(i))?.[0];
      if (tag === undefined) {
        i++;
      } else {
        const end = script.indexOf(tag, i + tag.length);
        i = end < 0 ? unclosed(`a ${tag} body`, i) : end + tag.length;
      }
    } else {
      i++;
    }
  }
  push(script.length);
  return statements;
}

/** Index just past the quote closing the one at `open`, or undefined when none does. */
function quotedEnd(
  script: string,
  open: number,
  quote: string,
  backslashEscapes: boolean,
): number | undefined {
  let i = open + 1;
  while (i < script.length) {
    const c = script[i];
    if (backslashEscapes && c === '\\') {
      i += 2;
    } else if (c === quote) {
      // A doubled quote stands for one and does not close.
      if (script[i + 1] === quote) i += 2;
      else return i + 1;
    } else {
      i++;
    }
  }
  return undefined;
}

/** Index just past the `*\/` closing the comment at `open` (they nest), or undefined. */
function blockCommentEnd(script: string, open: number): number | undefined {
  let depth = 0;
  let i = open;
  while (i < script.length) {
    if (script.startsWith('/*', i)) {
      depth++;
      i += 2;
    } else if (script.startsWith('*/', i)) {
      depth--;
      i += 2;
      if (depth === 0) return i;
    } else {
      i++;
    }
  }
  return undefined;
}

function isWordChar(c: string | undefined): boolean {
  return c !== undefined && /[\w\u0080-\uffff]/.test(c);
}

function lineAt(script: string, index: number): number {
  let line = 1;
  for (let i = script.indexOf('\n'); i >= 0 && i < index; i = script.indexOf('\n', i + 1)) line++;
  return line;
}
