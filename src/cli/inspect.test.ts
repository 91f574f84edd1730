/**
 * The offline debugging loop end to end, as a user runs it: a hardware-level scenario builds a
 * nested configuration and dumps memory and registers (`dump` step); `vsva inspect` reads those
 * files and decodes the stream table, STE, CD and the walk — every read of the cold 4 x 4 nested
 * walk — ending at the PA the live SMMU produced. Bad arguments are refused together, exit 2.
 */

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type InspectOptions, inspectCommand } from './inspect.ts';
import { memoryIo } from './io.ts';
import { runCommand } from './run.ts';

const dir = mkdtempSync(join(tmpdir(), 'vsva-inspect-cli-'));
const nested = readFileSync(join(import.meta.dirname, '..', '..', 'scenarios', 'hw-nested.yaml'), 'utf8');

/** `--image A --reg B …` as written in inspect-args.txt → options. */
function optionsOf(args: string): InspectOptions {
  const words = args.trim().split(/\s+/);
  const image: string[] = [];
  const reg: string[] = [];
  for (let i = 0; i < words.length; i += 2) (words[i] === '--image' ? image : reg).push(words[i + 1]!);
  return { image, reg };
}

describe('vsva inspect on a dump a scenario wrote', () => {
  const file = join(dir, 'nested-dump.yaml');
  writeFileSync(file, `${nested}\n  - { do: dump, dir: ${JSON.stringify(join(dir, 'dump'))} }\n`);
  const run = memoryIo();
  const status = runCommand([file], {}, run);
  const opts = optionsOf(readFileSync(join(dir, 'dump', 'inspect-args.txt'), 'utf8'));

  it('the scenario passes and writes images and registers', () => {
    expect(status).toBe(0);
    expect(opts.image!.length).toBeGreaterThan(0);
    expect(opts.reg!.map((r) => r.split('=')[0])).toContain('STRTAB_BASE_CFG');
  });

  it('decodes STE and CD, and shows the 24 reads of the cold nested walk ending at the live PA', () => {
    const io = memoryIo();
    expect(inspectCommand({ ...opts, sid: '2', ssid: '3', iova: '0x2345_6000_0abc', json: true }, io)).toBe(
      0,
    );
    const r = JSON.parse(io.stdout[0]!);
    expect(r.ok).toBe(true);
    expect(r.ste.fields.find((f: { name: string }) => f.name === 'Config')?.value).toBe(7);
    expect(r.translation.descReads).toBe(24);
    expect(r.translation.reads).toHaveLength(24);
    expect(r.translation.reads.filter((s: { stage: number }) => s.stage === 1)).toHaveLength(4);
    expect(r.verdict).toMatchObject({ status: 'ok', pa: '0x50101abc' });
  });

  it('renders the same decode for a terminal', () => {
    const io = memoryIo();
    inspectCommand({ ...opts, sid: '2', ssid: '3', iova: '0x234560000abc' }, io);
    const text = io.stdout.join('\n');
    expect(text).toContain('STE');
    expect(text).toContain('0x50101abc');
  });

  it('reports a fault as a result: an unmapped VA is F_TRANSLATION', () => {
    const io = memoryIo();
    expect(inspectCommand({ ...opts, sid: '2', ssid: '3', iova: '0x2345_6010_0000', json: true }, io)).toBe(
      0,
    );
    expect(JSON.parse(io.stdout[0]!).verdict.event.name).toBe('F_TRANSLATION');
  });

  it('refuses bad arguments together, decoding nothing', () => {
    const io = memoryIo();
    const code = inspectCommand(
      { image: ['nowhere.bin@0x1000'], reg: ['NOPE=1'], ssid: '1', iova: 'zz', access: 'fetch' },
      io,
    );
    expect(code).toBe(2);
    expect(io.stdout).toEqual([]);
    expect(io.stderr.length).toBeGreaterThanOrEqual(4);
    expect(io.stderr.join('\n')).toMatch(/nowhere\.bin/);
    expect(io.stderr.join('\n')).toMatch(/--iova zz/);
    expect(io.stderr.join('\n')).toMatch(/--access fetch/);
  });
});
