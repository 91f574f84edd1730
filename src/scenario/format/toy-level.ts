/**
 * A minimal level for the format's own tests: a counter with `add` and `check` steps. It exercises
 * the loader (schemas, positions, semantic checks) and the runner without the weight of the real
 * levels, and shows the shape a level takes.
 */

import { z } from 'zod';
import { expectMatch } from './expect.ts';
import { defineLevel, type Problem, stepBase } from './level.ts';
import { addr, u64 } from './values.ts';

const add = z.strictObject({ ...stepBase, do: z.literal('add'), value: addr, into: z.string() });
const check = z.strictObject({
  ...stepBase,
  do: z.literal('check'),
  counter: z.string(),
  expect: z.strictObject({ value: u64.optional() }).optional(),
});
const boom = z.strictObject({ ...stepBase, do: z.literal('boom') });
const step = z.discriminatedUnion('do', [add, check, boom]);
type Step = z.infer<typeof step>;
const setup = z.strictObject({ counters: z.array(z.string()).default([]) });
type Setup = z.infer<typeof setup>;

export const toyLevel = defineLevel<Setup, Step>({
  name: 'hardware',
  description: 'toy counters',
  setup,
  step,
  check(s, steps) {
    const problems: Problem[] = [];
    steps.forEach((st, i) => {
      const name = st.do === 'add' ? st.into : st.do === 'check' ? st.counter : undefined;
      if (name !== undefined && !s.counters.includes(name))
        problems.push({
          path: ['steps', i, st.do === 'add' ? 'into' : 'counter'],
          message: `no counter "${name}" in setup.counters`,
        });
    });
    return problems;
  },
  titleOf: (st) => st.do,
  start(s) {
    const c = new Map(s.counters.map((n) => [n, 0]));
    return {
      step(st, b) {
        if (st.do === 'add') c.set(st.into, c.get(st.into)! + st.value);
        else if (st.do === 'check') {
          if (st.expect?.value !== undefined)
            expectMatch(b, `${st.counter} value`, c.get(st.counter), st.expect.value);
        } else throw new Error('boom');
      },
      finish: () => ({ counters: Object.fromEntries(c) }),
    };
  },
});
