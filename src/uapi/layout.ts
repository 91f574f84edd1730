/**
 * Declarative C struct layouts for the Linux uAPI: each struct is a table of fields with their
 * byte offsets, checked when the table is defined (natural alignment, no overlap, inside the
 * size), and codecs between those bytes and plain objects. All uAPI structs are little-endian
 * with natural C alignment on the hosts vsva models (seed-spec.md, "Conventions").
 *
 * Values: u8/u16/u32/s32 fields are numbers; u64/s64 fields are bigints, so that whatever 64-bit
 * pattern a caller writes survives exactly (an argument is not an address until the kernel has
 * checked it). Encoding follows C assignment: a value is truncated to the field's width, and a
 * field the caller leaves out is zero. Decoding a buffer shorter than the struct reads the
 * missing bytes as zero — the kernel's "zero the struct, then copy what the user gave" pattern.
 */

// ---------------------------------------------------------------- field kinds

export type ScalarKind = 'u8' | 'u16' | 'u32' | 's32' | 'u64' | 's64';

interface FieldCommon {
  readonly offset: number;
  readonly size: number;
  readonly align: number;
}

export interface ScalarField<V> extends FieldCommon {
  readonly kind: 'scalar';
  readonly scalar: ScalarKind;
  /** Phantom: the decoded value type. */
  readonly _value?: V;
}

export interface BytesField extends FieldCommon {
  readonly kind: 'bytes';
}

export interface ArrayField<V> extends FieldCommon {
  readonly kind: 'array';
  readonly element: ScalarKind;
  readonly count: number;
  readonly _value?: V;
}

export interface StructField<F extends Fields> extends FieldCommon {
  readonly kind: 'struct';
  readonly layout: StructLayout<F>;
}

export interface UnionField<M extends Fields> extends FieldCommon {
  readonly kind: 'union';
  /** Members, each at the union's offset (their own offsets are 0). */
  readonly members: M;
}

export type Field =
  | ScalarField<number>
  | ScalarField<bigint>
  | BytesField
  | ArrayField<number[]>
  | ArrayField<bigint[]>
  | StructField<Fields>
  | UnionField<Fields>;

export type Fields = { readonly [name: string]: Field };

const SCALAR_SIZE: Record<ScalarKind, number> = { u8: 1, u16: 2, u32: 4, s32: 4, u64: 8, s64: 8 };

function scalar<V>(scalarKind: ScalarKind, offset: number): ScalarField<V> {
  const size = SCALAR_SIZE[scalarKind];
  return { kind: 'scalar', scalar: scalarKind, offset, size, align: size };
}

export const u8 = (offset: number): ScalarField<number> => scalar('u8', offset);
export const u16 = (offset: number): ScalarField<number> => scalar('u16', offset);
export const u32 = (offset: number): ScalarField<number> => scalar('u32', offset);
export const s32 = (offset: number): ScalarField<number> => scalar('s32', offset);
export const u64 = (offset: number): ScalarField<bigint> => scalar('u64', offset);
export const s64 = (offset: number): ScalarField<bigint> => scalar('s64', offset);

/** `u8 name[n]` kept as raw bytes (padding, reserved areas, opaque data). */
export function bytes(offset: number, n: number): BytesField {
  return { kind: 'bytes', offset, size: n, align: 1 };
}

/** `T name[count]` of a numeric type. */
export function array(
  offset: number,
  element: 'u8' | 'u16' | 'u32' | 's32',
  count: number,
): ArrayField<number[]>;
export function array(offset: number, element: 'u64' | 's64', count: number): ArrayField<bigint[]>;
export function array(
  offset: number,
  element: ScalarKind,
  count: number,
): ArrayField<number[]> | ArrayField<bigint[]> {
  const size = SCALAR_SIZE[element];
  return { kind: 'array', element, count, offset, size: size * count, align: size };
}

/** A nested struct. */
export function struct<F extends Fields>(offset: number, layout: StructLayout<F>): StructField<F> {
  return { kind: 'struct', layout, offset, size: layout.size, align: layout.align };
}

/**
 * A union of members that all start at `offset`. Its size is the largest member's (or `size` when
 * the C union has a padding member that is larger, like `__u8 padding2[56]`).
 */
export function union<M extends Fields>(offset: number, members: M, size?: number): UnionField<M> {
  let max = 0;
  let align = 1;
  for (const [name, m] of Object.entries(members)) {
    if (m.offset !== 0) throw new Error(`union member ${name} must be at offset 0 (got ${m.offset})`);
    max = Math.max(max, m.size);
    align = Math.max(align, m.align);
  }
  const total = size ?? max;
  if (total < max) throw new Error(`union size ${total} is smaller than its largest member (${max})`);
  return { kind: 'union', members, offset, size: roundUp(total, align), align };
}

// ---------------------------------------------------------------- value types

export type ValueOf<T> =
  T extends ScalarField<infer V>
    ? V
    : T extends BytesField
      ? Uint8Array
      : T extends ArrayField<infer V>
        ? V
        : T extends StructField<infer F>
          ? StructValue<F>
          : T extends UnionField<infer M>
            ? StructValue<M>
            : never;

export type InputOf<T> =
  T extends ScalarField<infer V>
    ? V extends bigint
      ? bigint | number
      : number
    : T extends BytesField
      ? Uint8Array | readonly number[]
      : T extends ArrayField<infer V>
        ? V extends bigint[]
          ? readonly (bigint | number)[]
          : readonly number[]
        : T extends StructField<infer F>
          ? StructInput<F>
          : T extends UnionField<infer M>
            ? StructInput<M>
            : never;

/** A decoded struct: every field present. A union decodes to every member's view of its bytes. */
export type StructValue<F extends Fields> = { -readonly [K in keyof F]: ValueOf<F[K]> };
/** What `encode` accepts: any subset of fields (the rest are zero); for a union, one member. */
export type StructInput<F extends Fields> = { readonly [K in keyof F]?: InputOf<F[K]> };

// ---------------------------------------------------------------- layouts

export interface LayoutOptions {
  /** Alignment when it is not that of the most-aligned field (packed or over-aligned structs). */
  readonly align?: number;
}

export class StructLayout<F extends Fields> {
  readonly name: string;
  readonly size: number;
  readonly align: number;
  readonly fields: F;

  constructor(name: string, size: number, fields: F, opts: LayoutOptions = {}) {
    this.name = name;
    this.size = size;
    this.fields = fields;
    let align = 1;
    for (const f of Object.values(fields)) align = Math.max(align, f.align);
    this.align = opts.align ?? align;
    checkLayout(name, size, this.align, fields);
  }

  /** offsetof(struct, field) */
  offsetof(field: keyof F & string): number {
    return this.fields[field]!.offset;
  }

  /** offsetofend(struct, field): the first byte after the field (the kernel's `minsz` idiom). */
  offsetofend(field: keyof F & string): number {
    const f = this.fields[field]!;
    return f.offset + f.size;
  }

  /** Decodes `size` bytes at `at`; bytes beyond the end of `src` read as zero. */
  decode(src: Uint8Array, at = 0): StructValue<F> {
    const buf = new Uint8Array(this.size);
    if (at < src.length) buf.set(src.subarray(at, Math.min(src.length, at + this.size)));
    return decodeFields(this.fields, new DataView(buf.buffer), 0);
  }

  /** A fresh `size`-byte buffer holding `v` (missing fields zero). */
  encode(v: StructInput<F> = {}): Uint8Array {
    const out = new Uint8Array(this.size);
    encodeFields(this.name, this.fields, v, new DataView(out.buffer), 0);
    return out;
  }

  /** Writes `v` into `dst` at `at` (the whole struct, missing fields zero). */
  encodeInto(dst: Uint8Array, at: number, v: StructInput<F>): void {
    dst.set(this.encode(v), at);
  }

  /** A struct layout of all the fields, for reports and tests: name, offset, size. */
  describe(): { name: string; offset: number; size: number }[] {
    return Object.entries(this.fields).map(([name, f]) => ({ name, offset: f.offset, size: f.size }));
  }
}

/** Defines a struct layout; throws (at module load) if the table is inconsistent. */
export function defineStruct<F extends Fields>(
  name: string,
  size: number,
  fields: F,
  opts: LayoutOptions = {},
): StructLayout<F> {
  return new StructLayout(name, size, fields, opts);
}

function roundUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

function checkLayout(name: string, size: number, align: number, fields: Fields): void {
  if (!Number.isInteger(size) || size <= 0) throw new Error(`${name}: bad size ${size}`);
  if (size % align !== 0)
    throw new Error(`${name}: size ${size} is not a multiple of its alignment ${align}`);
  const spans = Object.entries(fields)
    .map(([f, d]) => ({ f, start: d.offset, end: d.offset + d.size, align: d.align }))
    .sort((a, b) => a.start - b.start);
  let prevEnd = 0;
  let prev = '';
  for (const s of spans) {
    if (s.start % s.align !== 0)
      throw new Error(`${name}.${s.f}: offset ${s.start} is not ${s.align}-aligned`);
    if (s.start < prevEnd) throw new Error(`${name}.${s.f}: overlaps ${prev}`);
    if (s.end > size) throw new Error(`${name}.${s.f}: ends at ${s.end}, beyond the struct's ${size} bytes`);
    prevEnd = s.end;
    prev = s.f;
  }
}

// ---------------------------------------------------------------- codecs

function readScalar(kind: ScalarKind, dv: DataView, at: number): number | bigint {
  switch (kind) {
    case 'u8':
      return dv.getUint8(at);
    case 'u16':
      return dv.getUint16(at, true);
    case 'u32':
      return dv.getUint32(at, true);
    case 's32':
      return dv.getInt32(at, true);
    case 'u64':
      return dv.getBigUint64(at, true);
    case 's64':
      return dv.getBigInt64(at, true);
  }
}

function writeScalar(kind: ScalarKind, dv: DataView, at: number, v: number | bigint): void {
  switch (kind) {
    case 'u8':
      dv.setUint8(at, Number(v) & 0xff);
      return;
    case 'u16':
      dv.setUint16(at, Number(v) & 0xffff, true);
      return;
    case 'u32':
    case 's32':
      dv.setUint32(at, Number(BigInt.asUintN(32, toBigInt(v))), true);
      return;
    case 'u64':
    case 's64':
      dv.setBigUint64(at, BigInt.asUintN(64, toBigInt(v)), true);
      return;
  }
}

function toBigInt(v: number | bigint): bigint {
  if (typeof v === 'bigint') return v;
  if (!Number.isFinite(v)) return 0n;
  return BigInt(Math.trunc(v));
}

function decodeField(f: Field, dv: DataView, at: number): unknown {
  const p = at + f.offset;
  switch (f.kind) {
    case 'scalar':
      return readScalar(f.scalar, dv, p);
    case 'bytes':
      return new Uint8Array(dv.buffer.slice(dv.byteOffset + p, dv.byteOffset + p + f.size));
    case 'array': {
      const step = SCALAR_SIZE[f.element];
      return Array.from({ length: f.count }, (_, i) => readScalar(f.element, dv, p + i * step));
    }
    case 'struct':
      return decodeFields(f.layout.fields, dv, p);
    case 'union':
      return decodeFields(f.members, dv, p);
  }
}

function decodeFields<F extends Fields>(fields: F, dv: DataView, at: number): StructValue<F> {
  const out: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(fields)) out[name] = decodeField(f, dv, at);
  return out as StructValue<F>;
}

function encodeField(where: string, f: Field, v: unknown, dv: DataView, at: number): void {
  const p = at + f.offset;
  switch (f.kind) {
    case 'scalar':
      writeScalar(f.scalar, dv, p, v as number | bigint);
      return;
    case 'bytes': {
      const src = v as ArrayLike<number>;
      if (src.length > f.size) throw new Error(`${where}: ${src.length} bytes do not fit in ${f.size}`);
      for (let i = 0; i < src.length; i++) dv.setUint8(p + i, src[i]! & 0xff);
      return;
    }
    case 'array': {
      const src = v as readonly (number | bigint)[];
      if (src.length > f.count) throw new Error(`${where}: ${src.length} elements do not fit in ${f.count}`);
      const step = SCALAR_SIZE[f.element];
      for (let i = 0; i < src.length; i++) writeScalar(f.element, dv, p + i * step, src[i]!);
      return;
    }
    case 'struct':
      encodeFields(where, f.layout.fields, v as Record<string, unknown>, dv, p);
      return;
    case 'union': {
      const given = Object.keys(v as object).filter((k) => (v as Record<string, unknown>)[k] !== undefined);
      if (given.length > 1) throw new Error(`${where}: a union holds one member (got ${given.join(', ')})`);
      encodeFields(where, f.members, v as Record<string, unknown>, dv, p);
      return;
    }
  }
}

function encodeFields(
  where: string,
  fields: Fields,
  v: Record<string, unknown>,
  dv: DataView,
  at: number,
): void {
  for (const [name, value] of Object.entries(v)) {
    if (value === undefined) continue;
    const f = fields[name];
    if (f === undefined) throw new Error(`${where}: no field named ${name}`);
    encodeField(`${where}.${name}`, f, value, dv, at);
  }
}
