/**
 * The JSON Schema of scenario files (`vsva schema`, issue 7 §1), generated from the same zod
 * schemas the loader uses, so editors (VS Code's YAML extension, for instance) complete and check
 * scenarios as they are typed. It describes the input form: numbers may be YAML integers or hex
 * strings.
 */

import { z } from 'zod';
import type { AnyLevel } from './level.ts';
import { scenarioSchema } from './load.ts';

export function scenarioJsonSchema(levels: readonly AnyLevel[]): Record<string, unknown> {
  const schema = z.toJSONSchema(scenarioSchema(levels), { io: 'input', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
  return {
    ...schema,
    $id: 'https://vsva.dev/schema/scenario.json',
    title: 'vsva scenario',
    description: 'A vsva scenario: a setup and steps with expectations, at hardware, uAPI or system level.',
  };
}
