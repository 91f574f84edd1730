#!/usr/bin/env node
/**
 * The `vsva` command. `vsva run` executes the built-in hardware-level scenario (an SMMUv3 brought
 * up through MMIO, PASID and nested translation, a fault through the event queue, a stale IOTLB
 * entry until TLBI, a malformed STE) and prints its report; the exit status is non-zero when an
 * expectation fails. YAML scenarios, inspect and bench subcommands arrive with later issues.
 */

import { Command } from '@commander-js/extra-typings';
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
  .description('run the built-in hardware-level scenario and print its report')
  .option('--json', 'print the report as JSON')
  .addHelpText(
    'after',
    `
Examples:
  $ vsva run          readable report; exit status 1 if an expectation fails
  $ vsva run --json   the same report as JSON`,
  )
  .action((opts) => {
    const report = runHardwareDemo();
    process.stdout.write(`${opts.json ? JSON.stringify(report, null, 2) : renderReport(report)}\n`);
    process.exitCode = report.failed === 0 ? 0 : 1;
  });

program.parse();
