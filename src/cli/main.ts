#!/usr/bin/env node
/**
 * The `vsva` command (issue 7 §2): `run` scenarios (the default one when no file is given) and
 * report, `validate` scenario files, print the scenario `schema`, `inspect` a memory dump
 * offline, and `bench`. Each subcommand's logic lives in its own module and returns an exit
 * status; this file only declares the options and the help text.
 */

import { Command, InvalidArgumentError } from '@commander-js/extra-typings';
import { scenarioJsonSchema } from '../scenario/format/json-schema.ts';
import { LEVELS } from '../scenario/levels.ts';
import { benchCommand } from './bench.ts';
import { inspectCommand } from './inspect.ts';
import { processIo } from './io.ts';
import { runCommand, validateCommand } from './run.ts';

function parseSeed(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff)
    throw new InvalidArgumentError('expected an integer 0..4294967295');
  return n;
}

const program = new Command()
  .name('vsva')
  .description(
    'An executable model of vSVA: Arm SMMUv3 with PASIDs and nested translation, the Linux host uAPI, a VMM and a guest.',
  )
  .version('0.1.0')
  .showHelpAfterError()
  .addHelpText(
    'after',
    `
Examples:
  $ vsva run                                the default scenario: a VM using vSVA end to end
  $ vsva run scenarios/*.yaml               every example scenario; exit 1 if an expectation fails
  $ vsva run scenarios/hw-nested.yaml --trace t.json   then open t.json at https://ui.perfetto.dev
  $ vsva validate my.yaml                   schema and semantic checks, with file:line:column
  $ vsva schema > vsva-scenario.schema.json for editor completion
  $ vsva inspect --help                     decode a memory dump offline
  $ vsva bench --quick                      the translation benchmarks`,
  );

program
  .command('run')
  .description('run scenarios (or the default one) and report expectations, counters and invariants')
  .argument('[scenarios...]', 'YAML scenario files; none: the default scenario')
  .option('--json', 'print the report as JSON (one object, or {ok, reports} for several files)')
  .option('--trace <file>', 'write a Chrome trace-event JSON file (open it at ui.perfetto.dev)')
  .option('--seed <n>', "seed of the PRNG (overrides each scenario's seed)", parseSeed)
  .option('--hardware', 'with no file: run the built-in hardware-level SMMUv3 walk-through instead')
  .option('--autoreset', "with no file: the VMM's main loop uses EFD_AUTORESET eventfds")
  .addHelpText(
    'after',
    `
Examples:
  $ vsva run                                readable report of the default scenario
  $ vsva run --json                         the same as JSON: ok, steps, counters, invariants
  $ vsva run scenarios/seed-5-eventfd-autoreset.yaml scenarios/hw-faults.yaml
  $ vsva run scenarios/system-fault-storm.yaml --seed 7 --trace storm.json
Exit status: 0 all expectations met and invariants 0; 1 something failed; 2 bad input (nothing ran).`,
  )
  .action((files, opts) => {
    process.exitCode = runCommand(files, opts, processIo);
  });

program
  .command('validate')
  .description('check scenario files against the schema and the semantic rules, without running them')
  .argument('<files...>', 'YAML scenario files')
  .addHelpText(
    'after',
    `
Examples:
  $ vsva validate scenarios/*.yaml
  $ vsva validate broken.yaml    prints e.g. broken.yaml:12:9: steps[3].expect.pa: expected a number ...`,
  )
  .action((files) => {
    process.exitCode = validateCommand(files, processIo);
  });

program
  .command('schema')
  .description('print the JSON Schema of scenario files (for editor completion)')
  .addHelpText(
    'after',
    `
Examples:
  $ vsva schema > vsva-scenario.schema.json
  then in a scenario: # yaml-language-server: $schema=./vsva-scenario.schema.json`,
  )
  .action(() => {
    processIo.out(JSON.stringify(scenarioJsonSchema(LEVELS), null, 2));
  });

const collect = (v: string, prev: string[]): string[] => [...prev, v];

program
  .command('inspect')
  .description(
    'decode a memory dump offline: stream table, STE, CD table, CD, and a translation with every table read',
  )
  .option('--image <file@base>', 'a raw memory image and its physical base address (repeatable)', collect, [])
  .option(
    '--reg <name=value>',
    'an SMMU register value, e.g. STRTAB_BASE=0x40000000 (repeatable)',
    collect,
    [],
  )
  .option('--sid <n>', 'StreamID of the transaction')
  .option('--ssid <n>', 'SubstreamID (PASID); omit for a transaction without one')
  .option('--iova <addr>', 'address to translate; omit to decode the configuration only')
  .option('--access <kind>', 'read, write or exec', 'read')
  .option('--privileged', 'a privileged transaction (default: unprivileged, like user-space DMA)')
  .option('--json', 'print the decode as JSON')
  .addHelpText(
    'after',
    `
Registers: STRTAB_BASE and STRTAB_BASE_CFG are needed; IDR0/IDR1/IDR5, CR0, CR1, CR2 and GBPA are
used when given (missing ID registers mean the model's default features, and the report says so).

Examples:
  $ vsva inspect --image ram.bin@0x40000000 --reg STRTAB_BASE=0x40000000 --reg STRTAB_BASE_CFG=0x10188 \
        --sid 2 --ssid 3 --iova 0x234560000abc
  $ vsva inspect --image low.bin@0x0 --image high.bin@0x80000000 --reg STRTAB_BASE=0x80000000 \
        --reg STRTAB_BASE_CFG=0x8 --sid 1 --json
Exit status: 0 decoded (a translation fault is a result); 1 decoded with problems; 2 bad arguments.`,
  )
  .action((opts) => {
    process.exitCode = inspectCommand(opts, processIo);
  });

program
  .command('bench')
  .description('run the translation benchmarks (IOTLB hit, stage-1/2/nested walks, native C baseline)')
  .option('--quick', 'fewer runs and iterations (under a minute)')
  .option('--no-native', 'skip the C baseline')
  .addHelpText(
    'after',
    `
Examples:
  $ vsva bench --quick
  $ vsva bench --no-native    writes bench/results.json`,
  )
  .action((opts) => {
    process.exitCode = benchCommand(opts, processIo);
  });

program.parse();
