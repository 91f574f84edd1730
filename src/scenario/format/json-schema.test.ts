/**
 * The exported JSON Schema is what editors check scenarios against: every example scenario must
 * satisfy it (as YAML gives it to an editor), and it must reject what the loader rejects at the
 * schema level (an unknown action, an unknown field).
 */

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { LEVELS } from '../levels.ts';
import { scenarioJsonSchema } from './json-schema.ts';
import { normalizeYamlInts } from './values.ts';

const DIR = join(import.meta.dirname, '..', '..', '..', 'scenarios');
const FILES = readdirSync(DIR).filter((f) => f.endsWith('.yaml'));
const validate = new Ajv2020({ strict: false, allErrors: false }).compile(scenarioJsonSchema(LEVELS));
const doc = (text: string): unknown => normalizeYamlInts(parse(text, { intAsBigInt: true }));

describe('the JSON Schema of scenarios', () => {
  it.each(FILES)('accepts %s', (f) => {
    const ok = validate(doc(readFileSync(join(DIR, f), 'utf8')));
    expect(ok ? [] : validate.errors?.slice(0, 3)).toEqual([]);
  });

  it('rejects an unknown action and an unknown field', () => {
    const text = readFileSync(join(DIR, 'hw-nested.yaml'), 'utf8');
    expect(validate(doc(text.replace('do: transaction', 'do: transactoin')))).toBe(false);
    expect(validate(doc(text.replace('    ssid: 3\n', '    ssid: 3\n    sssid: 3\n')))).toBe(false);
  });
});
