#!/usr/bin/env node
/**
 * The `vsva` command. `vsva run` executes the default scenario — a VM with an assigned PASID DMA
 * device, a virtual SMMUv3 and a guest binding processes to PASIDs, end to end (see
 * src/scenario/default-system.ts) — and prints its report; `--hardware` runs the built-in
 * hardware-level walk-through instead. The exit status is non-zero unless every expectation is
 * met and every invariant is 0. YAML scenarios, inspect and bench subcommands arrive with later
 * issues.
 */

import { Command } from '@commander-js/extra-typings';
import { runDefaultScenario } from '../scenario/default-system.ts';
import { runHardwareDemo } from '../scenario/hw-demo.ts';
import { renderReport } from './report.ts';

const program = new Command()
  .name('vsva')
  .description(
    'An executable model of vSVA: Arm SMMUv3 with PASIDs and nested translation, and the stack above it.',
  )
  .version('0.1.0');

program
  .command('run')
  .description('run the default scenario (a VM using vSVA end to end) and print its report')
  .option('--json', 'print the report as one JSON object')
  .option('--hardware', 'run the built-in hardware-level SMMUv3 walk-through instead')
  .option('--autoreset', "the VMM's main loop uses EFD_AUTORESET eventfds")
  .addHelpText(
    'after',
    `
Examples:
  $ vsva run              readable report; exit status 1 unless every expectation and invariant holds
  $ vsva run --json       the same report as JSON: ok, counters, invariants, steps
  $ vsva run --hardware   the SMMUv3 hardware-level walk-through (no VM)`,
  )
  .action((opts) => {
    const report = opts.hardware
      ? runHardwareDemo()
      : runDefaultScenario({ eventfdAutoreset: opts.autoreset === true }).report;
    process.stdout.write(`${opts.json ? JSON.stringify(report, null, 2) : renderReport(report)}\n`);
    process.exitCode = report.ok ? 0 : 1;
  });

program.parse();
