import { readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { makeDirectories, requireRegularFile } from '../files.js';
import { ConfigError } from '../errors.js';
import { MemoryStore } from './memory.js';

/**
 * Records in memory, written through to one JSON file (atomically: temp file then rename), so a
 * restart finds them again. For one process; use Redis to share between processes.
 */
export class FileStore<T> extends MemoryStore<T> {
  private writing: Promise<void> = Promise.resolve();

  private constructor(private readonly path: string) {
    super();
  }

  static async open<T>(path: string): Promise<FileStore<T>> {
    const store = new FileStore<T>(path);
    let text: string | undefined;
    try {
      requireRegularFile(path);
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new ConfigError(`cannot read store file ${path}: ${(err as Error).message}`);
    }
    if (text !== undefined && text.trim() !== '') {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (err) {
        throw new ConfigError(`store file ${path} is not valid JSON: ${(err as Error).message}`);
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError(`store file ${path} must hold a JSON object`);
      for (const [id, value] of Object.entries(parsed)) store.records.set(id, value as T);
    }
    try {
      makeDirectories(dirname(path));
      // Written back now, so a place that cannot be written is said at start, not at the first change.
      await store.persist();
    } catch (err) {
      throw new ConfigError(`cannot write store file ${path}: ${(err as Error).message}`);
    }
    return store;
  }

  protected override persist(): Promise<void> {
    // Writes are chained so two quick changes never interleave; each writes the latest state.
    this.writing = this.writing.then(async () => {
      const tmp = `${this.path}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify(Object.fromEntries(this.records), null, 2));
      await rename(tmp, this.path);
    });
    return this.writing;
  }

  override async close(): Promise<void> {
    await this.writing;
  }
}
