import type { RecordStore, Unsubscribe } from '../store.js';

/** Records in this process only; the default for a single proxy. */
export class MemoryStore<T> implements RecordStore<T> {
  protected readonly records = new Map<string, T>();

  async get(id: string): Promise<T | undefined> {
    return this.records.get(id);
  }

  async all(): Promise<Map<string, T>> {
    return new Map(this.records);
  }

  async put(id: string, value: T): Promise<void> {
    this.records.set(id, value);
    await this.persist();
  }

  async putMany(entries: Iterable<[string, T]>): Promise<void> {
    for (const [id, value] of entries) this.records.set(id, value);
    await this.persist();
  }

  async delete(id: string): Promise<boolean> {
    const had = this.records.delete(id);
    if (had) await this.persist();
    return had;
  }

  async watch(): Promise<Unsubscribe> {
    return async () => {};
  }

  async close(): Promise<void> {}

  /** Subclasses that keep records somewhere durable write them out here. */
  protected async persist(): Promise<void> {}
}
