import { describe, expect, it } from 'vitest';
import { splitSqlScript } from '../../lambdas/core/sql-script.js';

const texts = (script: string) => splitSqlScript(script).map((s) => s.text);

describe('splitSqlScript', () => {
  it('splits at each semicolon, dropping white space and empty statements', () => {
    expect(texts('CREATE TABLE a (id int);\n\nINSERT INTO a VALUES (1);;\n  SELECT 1\n')).toEqual([
      'CREATE TABLE a (id int)',
      'INSERT INTO a VALUES (1)',
      'SELECT 1',
    ]);
  });

  it('gives the line each statement starts on, after the comments before it', () => {
    const script = '-- header; not a statement\n/* a; b */\nSELECT 1;\n\n-- next\nSELECT\n  2;\n';
    expect(splitSqlScript(script)).toEqual([
      { text: 'SELECT 1', line: 3 },
      { text: 'SELECT\n  2', line: 6 },
    ]);
  });

  it('keeps semicolons inside comments within a statement, strings and quoted identifiers', () => {
    const script = [
      "INSERT INTO t VALUES ('a;b', 'it''s; fine', E'back\\'slash;') -- trailing; comment",
      ';',
      'CREATE TABLE "odd;name" ("x"";y" int /* nested /* ; */ still; */);',
    ].join('\n');
    expect(texts(script)).toEqual([
      "INSERT INTO t VALUES ('a;b', 'it''s; fine', E'back\\'slash;') -- trailing; comment",
      'CREATE TABLE "odd;name" ("x"";y" int /* nested /* ; */ still; */)',
    ]);
  });

  it('keeps dollar-quoted bodies whole, with their own tags inside other tags', () => {
    const body =
      "DO $outer$\nBEGIN\n  EXECUTE $$SELECT 1; SELECT 2$$;\n  RAISE NOTICE 'x;';\nEND\n$outer$";
    expect(texts(`${body};\nSELECT $1::int;`)).toEqual([body, 'SELECT $1::int']);
  });

  it('does not take a backslash as an escape in a standard string', () => {
    expect(texts("SELECT 'a\\';SELECT 2")).toEqual(["SELECT 'a\\'", 'SELECT 2']);
  });

  it('refuses a script whose string or body is not closed, naming the line', () => {
    expect(() => splitSqlScript("SELECT 1;\nSELECT 'open;")).toThrow(
      'a string opened on line 2 is not closed',
    );
    expect(() => splitSqlScript('DO $x$ BEGIN END $y$;')).toThrow('a $x$ body opened on line 1');
    expect(() => splitSqlScript('/* /* */ SELECT 1;')).toThrow('a /* comment opened on line 1');
  });

  it('finds nothing in a script of comments only', () => {
    expect(splitSqlScript('-- nothing\n/* here */\n')).toEqual([]);
  });
});
