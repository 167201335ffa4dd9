/** The programs benchmarks compare: ours (built), configurable-http-proxy, and the tiny echo server. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startProc, waitListening, type Proc } from './procs.js';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** BENCH_NBPOOL_ROOT measures another checkout's build (e.g. a branch not merged yet). */
const nbpoolRoot = process.env.BENCH_NBPOOL_ROOT ?? repoRoot;
export const nbpoolBin = join(nbpoolRoot, 'bin', 'nbpool.js');

/**
 * The node flags a checkout's launcher runs its programs with: those on the first line of its
 * bin/nbpool.js (`#!/usr/bin/env -S node FLAGS`). A bench starts our programs with `node` itself,
 * so it must add them to measure what a user runs. An older build's launcher may have none.
 */
export function launcherNodeArgs(bin: string): string[] {
  const first = readFileSync(bin, 'utf8').split('\n', 1)[0] ?? '';
  const flags = /^#!\/usr\/bin\/env(?: -S)? node(?:\s+(.*))?$/.exec(first);
  if (!flags) throw new Error(`${bin}: its first line does not start node (${JSON.stringify(first)})`);
  return (flags[1] ?? '').split(/\s+/).filter(Boolean);
}

/** Node flags for our programs: the launcher's, then BENCH_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"). */
export const ourNodeArgs = [...launcherNodeArgs(nbpoolBin), ...(process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean)];

/** Which build of nbpool a bench starts, and with which node flags. */
export interface OurBuild {
  bin: string;
  nodeArgs: string[];
}

/** The build BENCH_NBPOOL_ROOT names (this checkout by default), with BENCH_NODE_ARGS. */
export const ourBuild: OurBuild = { bin: nbpoolBin, nodeArgs: ourNodeArgs };

/** The build of the checkout at `root` (its dist/ built), started with its launcher's flags and `nodeArgs`. */
export function buildAt(root: string, nodeArgs: string[]): OurBuild {
  const bin = join(root, 'bin', 'nbpool.js');
  return { bin, nodeArgs: [...launcherNodeArgs(bin), ...nodeArgs] };
}
export const chpBin = join(repoRoot, 'node_modules', 'configurable-http-proxy', 'bin', 'configurable-http-proxy');

/** `nbpool <program> --help` of a build, asked once per build and program; undefined when it fails. */
const helpTexts = new Map<string, string | undefined>();
function helpOf(build: OurBuild, program: string): string | undefined {
  const key = `${build.bin}\0${program}`;
  if (!helpTexts.has(key)) {
    let help: string | undefined;
    try {
      help = execFileSync(process.execPath, [build.bin, program, '--help'], { encoding: 'utf8', timeout: 20_000 });
    } catch {
      help = undefined;
    }
    helpTexts.set(key, help);
  }
  return helpTexts.get(key);
}

/** True when `nbpool <program>` is built and no longer the placeholder. */
export function ourProgramExists(program: string): boolean {
  if (!existsSync(join(nbpoolRoot, 'dist', 'cli', 'nbpool.js'))) return false;
  const help = helpOf(ourBuild, program);
  return help !== undefined && !help.includes('not yet implemented');
}

/**
 * Whether `nbpool <program>` takes `flag` (an older build named by BENCH_NBPOOL_ROOT, measured for
 * a before/after comparison, may predate it).
 */
export function ourProgramTakes(build: OurBuild, program: string, flag: string): boolean {
  return helpOf(build, program)?.includes(flag) ?? false;
}

export interface RunningProxy extends Proc {
  port: number;
  apiPort: number;
  apiUrl: string;
  url: string;
}

export const proxyToken = 'bench-token-' + process.pid;

/** Starts a CHP-compatible proxy (`kind`: ours or CHP) on loopback with the given default target. */
export async function startChpLike(kind: 'ours' | 'chp', name: string, defaultTarget: string, extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<RunningProxy> {
  const port = await freePort();
  const apiPort = await freePort();
  const flags = ['--ip', '127.0.0.1', '--port', String(port), '--api-ip', '127.0.0.1', '--api-port', String(apiPort), '--default-target', defaultTarget, '--log-level', 'warn', ...extraArgs];
  const args = kind === 'ours' ? [...ourNodeArgs, nbpoolBin, 'proxy', ...flags] : [chpBin, ...flags];
  const proc = startProc(name, process.execPath, args, { CONFIGPROXY_AUTH_TOKEN: proxyToken, ...env });
  await waitListening(proc, port);
  await waitListening(proc, apiPort);
  return { ...proc, port, apiPort, apiUrl: `http://127.0.0.1:${apiPort}`, url: `http://127.0.0.1:${port}` };
}

/** Compiles test/images/tiny/server.c for this host once (cached in the temp dir by source hash). */
export function tinyServerBinary(): string {
  const src = join(repoRoot, 'test', 'images', 'tiny', 'server.c');
  const hash = createHash('sha256').update(readFileSync(src)).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), `nbpool-bench-tiny-${hash}`);
  const bin = join(dir, 'tiny-notebook');
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true });
    execFileSync('gcc', ['-O2', '-pthread', '-o', bin + '.tmp', src]);
    execFileSync('mv', [bin + '.tmp', bin]);
  }
  return bin;
}

export interface TinyServer extends Proc {
  port: number;
}

/** The tiny notebook stand-in run directly on the host: HTTP and WebSocket echo under base URL `/`. */
export async function startTinyServer(): Promise<TinyServer> {
  const port = await freePort();
  const proc = startProc('tiny-echo', tinyServerBinary(), ['--ip', '127.0.0.1', '--port', String(port), '--base-url', '/']);
  await waitListening(proc, port);
  return { ...proc, port };
}
