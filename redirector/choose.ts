/**
 * Which node gets the next visitor: pure, no I/O, microseconds per call.
 *
 * Each node's weight is its free capacity as last polled (`room`, or tmpnb's `available` from a
 * node that reports no `room`) minus the visitors this redirector has sent it since that poll's
 * request left, so a burst between two polls cannot pile onto one node. Among the nodes with
 * weight left, smooth weighted round robin (nginx's) picks deterministically: every node's credit
 * grows by its weight, the richest is chosen and pays the total. Over any run of choices each node
 * gets its share to within about one visitor; random weighting drifts by several percent.
 */
import type { NodeStats } from '../shared/types.js';

/** What the chooser knows about one node; the registry owns these records and passes them in. */
export interface NodeLoad {
  id: string;
  /** Answered its last poll and is draining neither here nor by its own report. */
  eligible: boolean;
  /** Free capacity reported by the last successful poll. */
  free: number;
  /** Visitors sent to the node since this redirector started, less those it refused alone (see unsend). */
  sent: number;
  /** The value of `sent` when the last successful poll's request left: those sends are in `free`. */
  sentAtPoll: number;
  /** Smooth weighted round robin credit. */
  credit: number;
}

export function newLoad(id: string): NodeLoad {
  return { id, eligible: false, free: 0, sent: 0, sentAtPoll: 0, credit: 0 };
}

/** A node's free capacity from its stats: our `room`, else tmpnb's `available`; never negative. */
export function freeCapacity(stats: Pick<NodeStats, 'available'> & { room?: number }): number {
  const free = typeof stats.room === 'number' ? stats.room : stats.available;
  return Number.isFinite(free) && free > 0 ? Math.floor(free) : 0;
}

/** Free capacity left after the sends the last poll could not yet show. */
export function remaining(load: NodeLoad): number {
  return load.free - (load.sent - load.sentAtPoll);
}

/**
 * Takes back one send that used no room. A send the last poll already saw (sent before its request
 * left) is in `free` as no room used, so there is nothing to take back from it; a poll in flight
 * meanwhile can leave one visitor too many in `remaining` until the next poll, which a full node
 * refuses as such.
 */
export function unsend(load: NodeLoad): void {
  if (load.sent > load.sentAtPoll) load.sent--;
}

/** Records a poll's result; `sentWhenPollLeft` is `load.sent` read when the poll request left. */
export function recordPoll(load: NodeLoad, free: number, sentWhenPollLeft: number): void {
  load.free = free;
  load.sentAtPoll = sentWhenPollLeft;
}

/**
 * Picks the node for the next visitor and counts the send, or returns undefined when every node is
 * down, draining or full (the caller then shows its waiting page or answers 429).
 */
export function choose(loads: Iterable<NodeLoad>): NodeLoad | undefined {
  let best: NodeLoad | undefined;
  let total = 0;
  for (const load of loads) {
    const weight = load.eligible ? remaining(load) : 0;
    if (weight <= 0) {
      // A node out of the running starts afresh when it returns, instead of with stale credit.
      load.credit = 0;
      continue;
    }
    load.credit += weight;
    total += weight;
    if (best === undefined || load.credit > best.credit) best = load;
  }
  if (best === undefined) return undefined;
  best.credit -= total;
  best.sent++;
  return best;
}
