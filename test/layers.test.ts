/**
 * Enforces the layering of ARCHITECTURE.md: imports point down. arch ← uapi ← hw ← host ←
 * vmm | guest ← scenario ← cli, where vmm and guest never import each other, and nothing in src
 * imports from test/ or bench/.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '..', 'src');
const RANK: Record<string, number> = {
  arch: 0,
  uapi: 1,
  hw: 2,
  host: 3,
  vmm: 4,
  guest: 4,
  scenario: 5,
  cli: 6,
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function layerOf(path: string): string {
  return relative(SRC, path).split('/')[0]!;
}

describe('layering', () => {
  const all = files(SRC);

  it('every file sits in a known layer', () => {
    for (const f of all) expect(Object.keys(RANK), relative(SRC, f)).toContain(layerOf(f));
  });

  it('imports point down, and vmm and guest stay apart', () => {
    const bad: string[] = [];
    for (const f of all) {
      const from = layerOf(f);
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(/from\s+'(\.[^']+)'/g)) {
        const target = join(f, '..', m[1]!);
        const rel = relative(SRC, target);
        if (rel.startsWith('..')) {
          if (!f.endsWith('.test.ts')) bad.push(`${relative(SRC, f)} imports outside src: ${m[1]}`);
          continue;
        }
        const to = rel.split('/')[0]!;
        const ok = RANK[to]! < RANK[from]! || to === from;
        if (!ok) bad.push(`${relative(SRC, f)} (${from}) imports ${rel} (${to})`);
      }
    }
    expect(bad).toEqual([]);
  });
});
