/**
 * Claims written down before they are answered. The engine's claim marker (markClaimed) lands a
 * little later, off the claim path; a crash in between must not hand the container out again, so
 * each claim is first appended here synchronously. A killed process loses nothing it wrote (the
 * kernel holds the page); a restart reads the journal, then compacts it to the claims still alive.
 */
import { closeSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { makeDirectories, requireRegularFile } from '../shared/files.js';

export interface ClaimJournal {
  /** Records a claim; returns once it survives this process being killed. */
  record(id: string): void;
  /** Ids recorded and not compacted away. */
  load(): Set<string>;
  /** Rewrites the journal to hold only `ids`. */
  compact(ids: Iterable<string>): void;
}

export class FileClaimJournal implements ClaimJournal {
  /** Kept open between claims: one write(2) a claim, not open, write and close. */
  private fd: number | undefined;

  /** Opens (creating) the file now, so a path that cannot be written fails at start, not on a visitor's claim. */
  constructor(private readonly path: string) {
    makeDirectories(dirname(path));
    requireRegularFile(path);
    this.fd = openSync(path, 'a');
  }

  record(id: string): void {
    this.fd ??= openSync(this.path, 'a');
    writeSync(this.fd, id + '\n');
  }

  load(): Set<string> {
    let text = '';
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return new Set(text.split('\n').filter((line) => /^[A-Za-z0-9]{1,64}$/.test(line)));
  }

  compact(ids: Iterable<string>): void {
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, [...ids].map((id) => id + '\n').join(''));
    renameSync(tmp, this.path);
    // The open descriptor still points at the replaced file: the next claim opens the new one.
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** For tests of the rules and for runs that keep no state. */
export class MemoryClaimJournal implements ClaimJournal {
  private ids = new Set<string>();

  record(id: string): void {
    this.ids.add(id);
  }

  load(): Set<string> {
    return new Set(this.ids);
  }

  compact(ids: Iterable<string>): void {
    this.ids = new Set(ids);
  }
}
