import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DNS_NAMESPACE, deriveId, SPILLWAY_NAMESPACE, uuidV5 } from '../../lambdas/example/ids.js';

describe('uuidV5', () => {
  it('matches the known vector: DNS namespace and www.example.com', () => {
    expect(uuidV5('www.example.com', DNS_NAMESPACE)).toBe('2ed6657d-e927-568b-95e1-2665a8aea6a2');
  });

  it('matches the vector of the Python and uuid-package docs: DNS namespace and python.org', () => {
    expect(uuidV5('python.org', DNS_NAMESPACE)).toBe('886313e1-3b8a-5372-9b90-0c9aee199e5d');
  });

  it('accepts an upper-case namespace', () => {
    expect(uuidV5('www.example.com', DNS_NAMESPACE.toUpperCase())).toBe(
      '2ed6657d-e927-568b-95e1-2665a8aea6a2',
    );
  });

  it('rejects a namespace that is not a UUID', () => {
    expect(() => uuidV5('x', 'not-a-uuid')).toThrow(/namespace is not a UUID/);
  });

  it('hashes names as UTF-8 (vector from Python uuid.uuid5)', () => {
    expect(uuidV5('caf\u00e9', DNS_NAMESPACE)).toBe('5e2e2331-a683-5e18-b56d-666e31574b41');
  });

  it('always yields a version 5, RFC-variant UUID and is deterministic', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), (name) => {
        const id = uuidV5(name);
        expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        expect(uuidV5(name)).toBe(id);
      }),
    );
  });

  it('uses the Spillway namespace by default', () => {
    expect(uuidV5('x')).toBe(uuidV5('x', SPILLWAY_NAMESPACE));
    expect(uuidV5('x')).not.toBe(uuidV5('x', DNS_NAMESPACE));
  });
});

describe('deriveId', () => {
  it('gives a retried step the same id for the same input', () => {
    const document = '0c7f3a52-9a8e-4d5e-8a0e-1f6f2b2a9c11';
    expect(deriveId('chunk', document, 3)).toBe(deriveId('chunk', document, 3));
    expect(deriveId('chunk', document, 3)).not.toBe(deriveId('chunk', document, 4));
    expect(deriveId('chunk', document, 3)).not.toBe(deriveId('mention', document, 3));
  });

  it('never confuses where one part ends and the next begins', () => {
    expect(deriveId('k', 'a-b', 'c')).not.toBe(deriveId('k', 'a', 'b-c'));
    expect(deriveId('k', '1')).not.toBe(deriveId('k', 1));
  });

  it('is stable across releases (a changed namespace or encoding would duplicate rows)', () => {
    expect(deriveId('chunk', '0c7f3a52-9a8e-4d5e-8a0e-1f6f2b2a9c11', 0)).toBe(
      uuidV5('["chunk","0c7f3a52-9a8e-4d5e-8a0e-1f6f2b2a9c11",0]', SPILLWAY_NAMESPACE),
    );
    expect(SPILLWAY_NAMESPACE).toBe('6e60164b-fc4e-4d14-82af-a60295398ff5');
  });
});
