/** Process lifecycle: the PID file, and graceful shutdown on SIGTERM or SIGINT. */
import { rmSync, writeFileSync } from 'node:fs';
import { withOptionFile } from './config.js';
import { requireRegularFile } from './files.js';
import type { Logger } from './log.js';

/** Writes our PID to `path` (when one is given) and returns what removes it again. */
export function writePidFile(path: string | undefined): () => void {
  if (!path) return () => {};
  withOptionFile('--pid-file', path, (file) => {
    requireRegularFile(file);
    writeFileSync(file, `${process.pid}\n`);
  });
  return () => rmSync(path, { force: true });
}

export function onShutdown(log: Logger, stop: () => Promise<void>, graceMs = 10_000): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      log.error({ graceMs }, 'shutdown took too long: exiting');
      process.exit(1);
    }, graceMs);
    timer.unref();
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', handler);
  process.once('SIGINT', handler);
}
