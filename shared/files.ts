/**
 * Files and directories the programs are told to use: `mkdir -p` for the directories they keep
 * state in, and the check that a file is an ordinary one.
 *
 * Not `mkdirSync(path, { recursive: true })`: Node 20's loops forever where the kernel answers
 * ENOENT for a directory whose parent exists (anywhere under /proc, for one), so a mistyped
 * `--state-dir` or `--claims-journal` would hang the program at start instead of saying why.
 */
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** Creates `path` and any missing parents (new ones with `mode`); errors are mkdir's own, e.g. EEXIST for a file in the way. */
export function makeDirectories(path: string, mode = 0o777): void {
  const dir = resolve(path);
  try {
    mkdirSync(dir, { mode });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && isDirectory(dir)) return;
    const parent = dirname(dir);
    // ENOENT with the parent there (or no parent left) cannot be mended by making parents.
    if (code !== 'ENOENT' || parent === dir || isDirectory(parent)) throw err;
    makeDirectories(parent, mode);
    makeDirectories(dir, mode);
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Throws (code ENOTREG) unless `path` is absent or a regular file: reading `/dev/zero` never ends,
 * and opening a FIFO waits for a writer, so an operator's slip would hang the program at start.
 */
export function requireRegularFile(path: string): void {
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  // The message is the whole reason: callers put the path before it (withOptionFile, the file store).
  if (!isFile) throw Object.assign(new Error('not a regular file'), { code: 'ENOTREG' });
}
