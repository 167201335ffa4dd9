/**
 * Who runs an instance, and whether that process still lives: the identity a backend writes on
 * its engine-side marker (ContainerBackend.acquireInstance) and the check a newcomer makes before
 * taking over. On the same machine (same boot) a pid and its start time prove liveness; an owner
 * on another machine cannot be checked from here, so it counts as alive.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

export interface InstanceOwner {
  host: string;
  /** Linux boot id: the same boot on the same machine. Empty when unknown. */
  boot: string;
  pid: number;
  /** The process's start time in clock ticks since boot (/proc/<pid>/stat), so a reused pid is no owner. */
  started: string;
  /** ISO time the ownership was taken. */
  since: string;
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return fallback;
  }
}

/** Field 22 of /proc/<pid>/stat (after the parenthesised command, which may hold spaces). */
function processStart(pid: number): string | undefined {
  const stat = readOr(`/proc/${pid}/stat`, '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19];
}

export function currentOwner(now = new Date()): InstanceOwner {
  return { host: hostname(), boot: readOr('/proc/sys/kernel/random/boot_id', ''), pid: process.pid, started: processStart(process.pid) ?? '', since: now.toISOString() };
}

/** Whether `owner` may still be running: false only when provably gone (same boot, pid dead or reused). */
export function ownerMayLive(owner: InstanceOwner, here: InstanceOwner = currentOwner()): boolean {
  if (!owner.boot || owner.boot !== here.boot) return true;
  if (!Number.isInteger(owner.pid) || owner.pid <= 0) return false;
  return processStart(owner.pid) === owner.started;
}

export function describeOwner(owner: InstanceOwner): string {
  return `pid ${owner.pid} on ${owner.host} since ${owner.since}`;
}

/** Thrown by acquireInstance when a live orchestrator runs the instance on this engine. */
export class InstanceTaken extends Error {
  constructor(
    readonly instance: string,
    readonly owner: InstanceOwner,
    /** How an operator removes the marker of an owner that is gone but cannot be proven so. */
    readonly clearHint: string,
  ) {
    super(`instance ${JSON.stringify(instance)} is run on this engine by another orchestrator (${describeOwner(owner)})`);
  }
}
