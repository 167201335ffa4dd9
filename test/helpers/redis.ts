/** Starts a throwaway redis-server on a free loopback port for one test file. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from './net.js';
import { createConnection } from 'node:net';

export interface TestRedis {
  url: string;
  port: number;
  /** SIGKILL (a crash, or `kill` by an operator); its data stays in its directory when persisted. */
  kill(): Promise<void>;
  /** Starts it again on the same port and directory, and waits until it answers. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    socket.once('connect', () => socket.end('PING\r\n'));
    socket.once('data', (d) => {
      socket.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Starts redis-server on a free port and waits until it answers; with `delayMs`, returns at once
 * and starts the server that much later (a Redis that comes up after its clients); with `persist`,
 * an append-only file as deploy/ runs it (fsync every write, so a SIGKILL loses nothing written).
 */
export async function startRedis({ delayMs = 0, persist = false }: { delayMs?: number; persist?: boolean } = {}): Promise<TestRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'nbpool-redis-'));
  let child: ChildProcess | undefined;
  const launch = () => {
    const durability = persist ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...durability, '--dir', dir], { stdio: 'ignore' });
  };
  const timer = delayMs > 0 ? setTimeout(launch, delayMs) : undefined;
  if (!timer) {
    launch();
    await waitFor(() => ping(port), { timeoutMs: 10_000, what: `redis-server on port ${port}` });
  }
  const kill = async () => {
    clearTimeout(timer);
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    kill,
    async restart() {
      await kill();
      launch();
      await waitFor(() => ping(port), { timeoutMs: 10_000, what: `redis-server on port ${port} again` });
    },
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
