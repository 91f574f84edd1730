/**
 * Where a command's output goes. Commands take an `Io` and return their exit status, so tests run
 * them in-process and read what they printed; `main.ts` passes the real streams.
 */

import { writeFileSync } from 'node:fs';

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Writes a file; an error message when it cannot. */
  writeFile(path: string, data: string): string | undefined;
  /** Whether stderr is a terminal (progress bars). */
  readonly tty: boolean;
}

export const processIo: Io = {
  out: (t) => process.stdout.write(`${t}\n`),
  err: (t) => process.stderr.write(`${t}\n`),
  writeFile(path, data) {
    try {
      writeFileSync(path, data);
      return undefined;
    } catch (e) {
      return (e as Error).message;
    }
  },
  tty: process.stderr.isTTY === true && process.env.CI === undefined,
};

/** An Io that keeps everything, for tests. */
export function memoryIo(): Io & { stdout: string[]; stderr: string[]; files: Map<string, string> } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const files = new Map<string, string>();
  return {
    stdout,
    stderr,
    files,
    out: (t) => stdout.push(t),
    err: (t) => stderr.push(t),
    writeFile(path, data) {
      files.set(path, data);
      return undefined;
    },
    tty: false,
  };
}
