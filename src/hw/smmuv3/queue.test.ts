/** Queue index arithmetic against a plain model of a circular buffer. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { qConsistent, qCount, qEmpty, qFull, qIndex, qNext, qWrap } from './queue.ts';

describe('queue index arithmetic', () => {
  it('matches a counter model over many laps', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 8 }), fc.array(fc.boolean(), { maxLength: 300 }), (log2, ops) => {
        const size = 2 ** log2;
        let prod = 0;
        let cons = 0;
        let p = 0;
        let c = 0; // unbounded counters
        for (const produce of ops) {
          if (produce && p - c < size) {
            prod = qNext(prod, log2);
            p++;
          } else if (!produce && p > c) {
            cons = qNext(cons, log2);
            c++;
          }
          expect(qIndex(prod, log2)).toBe(p % size);
          expect(qWrap(prod, log2)).toBe(Math.floor(p / size) % 2);
          expect(qCount(prod, cons, log2)).toBe(p - c);
          expect(qEmpty(prod, cons, log2)).toBe(p === c);
          expect(qFull(prod, cons, log2)).toBe(p - c === size);
          expect(qConsistent(prod, cons, log2)).toBe(true);
        }
      }),
    );
  });

  it('flags PROD behind CONS as inconsistent', () => {
    expect(qConsistent(1, 3, 2)).toBe(false); // same wrap, prod behind
    expect(qConsistent(0b110, 0, 2)).toBe(false); // prod ahead by more than the size
    expect(qConsistent(0b100, 0, 2)).toBe(true); // full
  });
});
