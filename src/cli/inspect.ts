/**
 * `vsva inspect` (issue 7 §2): the offline debugging a user does on a dump. Given raw memory
 * images (FILE@BASE, several allowed), SMMU register values (NAME=VALUE) and optionally a
 * transaction (--sid, --ssid, --iova, --access), it decodes the stream table, the STE, the CD
 * table and the CD, and translates the address showing every descriptor read of the walk
 * (src/scenario/inspect). Bad arguments are reported together and nothing is decoded (exit 2); a
 * decode with problems (missing registers, inconsistent ID registers) exits 1; otherwise 0 — a
 * translation fault is a result, not an error.
 */

import {
  type AccessName,
  type InspectQuery,
  inspect,
  parseUint,
  readImages,
  registersFromSpecs,
  renderInspect,
} from '../scenario/inspect/index.ts';
import type { Io } from './io.ts';

export interface InspectOptions {
  readonly image?: readonly string[];
  readonly reg?: readonly string[];
  readonly sid?: string;
  readonly ssid?: string;
  readonly iova?: string;
  readonly access?: string;
  readonly privileged?: boolean;
  readonly json?: boolean;
}

const ACCESSES: readonly AccessName[] = ['read', 'write', 'exec'];

/** A numeric option below 2^53 (hex or decimal); an error message otherwise. */
function num(name: string, text: string | undefined, errors: string[]): number | undefined {
  if (text === undefined) return undefined;
  const v = parseUint(text);
  if (v === undefined || v > BigInt(Number.MAX_SAFE_INTEGER)) {
    errors.push(`--${name} ${text}: expected a number (hex 0x… or decimal) below 2^53`);
    return undefined;
  }
  return Number(v);
}

/** The query the options describe, or undefined when no --sid is given. */
function queryOf(opts: InspectOptions, errors: string[]): InspectQuery | undefined {
  const sid = num('sid', opts.sid, errors);
  const ssid = num('ssid', opts.ssid, errors);
  const iova = num('iova', opts.iova, errors);
  const access = opts.access ?? 'read';
  if (!ACCESSES.includes(access as AccessName))
    errors.push(`--access ${access}: expected read, write or exec`);
  if (sid === undefined) {
    if (opts.ssid !== undefined || opts.iova !== undefined) errors.push('--ssid and --iova need --sid');
    return undefined;
  }
  return {
    sid,
    ...(ssid !== undefined ? { ssid } : {}),
    ...(iova !== undefined ? { iova } : {}),
    access: access as AccessName,
    privileged: opts.privileged === true,
  };
}

export function inspectCommand(opts: InspectOptions, io: Io): number {
  const errors: string[] = [];
  const images = readImages(opts.image ?? []);
  if (!images.ok) errors.push(images.error);
  const regs = registersFromSpecs(opts.reg ?? []);
  if (!regs.ok) errors.push(regs.error);
  const query = queryOf(opts, errors);
  if ((opts.image ?? []).length === 0) errors.push('at least one --image FILE@BASE is needed');
  if (errors.length > 0 || !images.ok || !regs.ok) {
    for (const e of errors) io.err(`vsva inspect: ${e}`);
    return 2;
  }
  const report = inspect({
    images: images.value,
    registers: regs.value,
    ...(query !== undefined ? { query } : {}),
  });
  io.out(opts.json === true ? JSON.stringify(report, null, 2) : renderInspect(report));
  return report.ok ? 0 : 1;
}
