/** `nbpool up` as a child process, as an operator runs it: start, read its addresses, stop or kill. */
import { spawn, type ChildProcess } from 'node:child_process';
import { waitFor } from './net.js';

const cli = new URL('../../cli/nbpool.ts', import.meta.url).pathname;

export interface UpProcess {
  child: ChildProcess;
  /** Public URL (the proxy), without a trailing slash. */
  url: string;
  /** Route API of the proxy. */
  apiUrl: string;
  /** Admin API and status page of the orchestrator. */
  adminUrl: string;
  stderr(): string;
  /** Its log (JSON lines on stdout). */
  stdout(): string;
  /** SIGTERM, resolves to the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL, resolves once the process is gone. */
  kill(): Promise<void>;
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Spawns `nbpool up ARGS` (without waiting): for runs expected to fail at start. */
export function spawnUp(args: readonly string[], env: NodeJS.ProcessEnv = process.env): { child: ChildProcess; stderr(): string; stdout(): string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', cli, 'up', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stderr = '';
  let stdout = '';
  child.stderr!.on('data', (d) => (stderr += String(d)));
  child.stdout!.on('data', (d) => (stdout += String(d)));
  return { child, stderr: () => stderr, stdout: () => stdout, exited: exited(child) };
}

/** Starts `nbpool up ARGS` and waits for its "visitors open" line. */
export async function startUp(args: readonly string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 60_000): Promise<UpProcess> {
  const { child, stderr, stdout, exited: done } = spawnUp(args, env);
  const started = waitFor(() => {
    const visitors = /visitors open (http:\/\/\S+?)\/? +\(status page and admin API (\S+?)\/?\)/.exec(stderr());
    const routeApi = /route API (http:\/\/\S+)/.exec(stderr());
    return visitors && routeApi ? [visitors[0], visitors[1]!, routeApi[1]!, visitors[2]!] : undefined;
  }, {
    timeoutMs,
    intervalMs: 50,
    what: 'nbpool up to start',
  });
  const failed = done.then((code) => Promise.reject(new Error(`nbpool up exited with ${code}: ${stderr()}`)));
  let line: string[];
  try {
    line = await Promise.race([started, failed]);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\n${stderr().slice(-2000)}`);
  }
  failed.catch(() => undefined);
  return {
    child,
    url: line[1]!,
    apiUrl: line[2]!,
    adminUrl: line[3]!,
    stderr,
    stdout,
    stop() {
      const done = exited(child);
      child.kill('SIGTERM');
      return done;
    },
    async kill() {
      const done = exited(child);
      child.kill('SIGKILL');
      await done;
    },
  };
}
