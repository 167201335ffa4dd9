/** Visitors of a node, as a browser behaves: claim, follow the redirect, wait in line when asked. */
import type { Agent } from 'node:http';
import { httpRequest } from './http.js';

export interface ClaimTiming {
  /** Request to the 302 (the orchestrator registers the route before answering). */
  claimMs: number;
  /** Request to the container's first page, through the proxy. */
  firstPageMs: number;
  location: string;
}

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

/** Follows a claim's redirect to the container's page; throws unless the container itself answers. */
async function landing(base: string, location: string, agent: Agent): Promise<void> {
  const page = await httpRequest(new URL(location, base).href, { agent });
  if (page.status !== 200 || !page.body.includes('<title>tiny</title>')) {
    throw new Error(`page ${location} answered ${page.status}, not the container's page: ${page.body.slice(0, 120)}`);
  }
}

/** One claim through the proxy: GET /spawn/ -> 302 /user/<id>/..., then that page (the route must be live). */
export async function claimOnce(base: string, agent: Agent, followToPage = true): Promise<ClaimTiming> {
  const t0 = process.hrtime.bigint();
  const res = await httpRequest(`${base}/spawn/`, { agent });
  const claimMs = ms(t0);
  const location = res.headers.location as string | undefined;
  if (res.status !== 302 || !location || !/\/user\/[^/]+/.test(location)) {
    throw new Error(`claim answered ${res.status} ${location ?? ''}: ${res.body.slice(0, 120)}`);
  }
  if (followToPage) await landing(base, location, agent);
  return { claimMs, firstPageMs: followToPage ? ms(t0) : NaN, location };
}

/**
 * The control beside each claim: a GET through the same proxy to the orchestrator's /api/stats,
 * which does no claim. It shows what the hops alone cost on the machine at that moment.
 */
export async function controlRequest(base: string, agent: Agent): Promise<number> {
  const t0 = process.hrtime.bigint();
  const res = await httpRequest(`${base}/api/stats`, { agent });
  if (res.status !== 200) throw new Error(`control GET /api/stats answered ${res.status}`);
  return ms(t0);
}

export async function verifyLanding(base: string, location: string, agent: Agent): Promise<void> {
  await landing(base, location, agent);
}

export interface VisitorOutcome {
  landed: boolean;
  /** Arrival to the container's first page. */
  waitMs: number;
  /** Had to wait in line (got the waiting page). */
  queued: boolean;
  error?: string;
}

/**
 * A visitor arriving at /spawn/: lands at once on a 302, or gets the waiting page and long-polls
 * /api/wait/<ticket> as the page's script does, then follows the URL it is given.
 */
export async function visitor(base: string, agent: Agent, deadlineMs: number): Promise<VisitorOutcome> {
  const t0 = process.hrtime.bigint();
  const stop = Date.now() + deadlineMs;
  try {
    const res = await httpRequest(`${base}/spawn/`, { agent, timeoutMs: deadlineMs });
    const location = res.headers.location as string | undefined;
    if (res.status === 302 && location) {
      await landing(base, location, agent);
      return { landed: true, waitMs: ms(t0), queued: false };
    }
    const ticket = /\/api\/wait\/([A-Za-z0-9]+)/.exec(res.body)?.[1];
    if (res.status !== 200 || !ticket) return { landed: false, waitMs: ms(t0), queued: false, error: `first answer ${res.status}${res.headers['retry-after'] ? ` Retry-After ${String(res.headers['retry-after'])}` : ''}: ${res.body.replace(/\s+/g, ' ').slice(0, 100)}` };
    while (Date.now() < stop) {
      const poll = await httpRequest(`${base}/api/wait/${ticket}`, { agent, timeoutMs: Math.max(1000, stop - Date.now()) });
      if (poll.status !== 200) return { landed: false, waitMs: ms(t0), queued: true, error: `wait answered ${poll.status}: ${poll.body.slice(0, 100)}` };
      const body = JSON.parse(poll.body) as { url?: string };
      if (body.url) {
        await landing(base, body.url, agent);
        return { landed: true, waitMs: ms(t0), queued: true };
      }
    }
    return { landed: false, waitMs: ms(t0), queued: true, error: 'bench deadline passed while waiting' };
  } catch (err) {
    return { landed: false, waitMs: ms(t0), queued: false, error: (err as Error).message };
  }
}
