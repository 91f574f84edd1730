/**
 * The assertion every uAPI layout test makes: a struct's size, its alignment, and each field's
 * name, offset and size in declaration order — written out as literals in the test, so that a
 * layout table that drifts from the kernel's header fails loudly. Used by the *.test.ts files.
 */

import { expect } from 'vitest';

export type FieldRow = readonly [name: string, offset: number, size: number];

export interface LayoutLike {
  readonly size: number;
  readonly align: number;
  describe(): { name: string; offset: number; size: number }[];
}

/** Size, alignment, and every field (name, offset, size) in declaration order. */
export function expectLayout(
  layout: LayoutLike,
  size: number,
  align: number,
  fields: readonly FieldRow[],
): void {
  expect(layout.size).toBe(size);
  expect(layout.align).toBe(align);
  expect(layout.describe().map((f) => [f.name, f.offset, f.size])).toEqual(fields.map((r) => [...r]));
}
