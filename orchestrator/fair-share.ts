/**
 * Fair shares per client, pure: a cap on containers one client holds at once and a claim rate
 * (token bucket), so one client cannot take a whole pool. The client is an address (an IPv6
 * client's /64), worked out by shared/client-address.ts.
 */

export interface FairShareLimits {
  /** Containers one client may hold at once; 0 = no cap. */
  maxPerClient: number;
  /** Sustained claims per minute per client; 0 = no rate limit. */
  claimsPerMinute: number;
  /** Claims a client may make in a quick burst before the rate applies. */
  burst: number;
}

export type ShareVerdict = { ok: true } | { ok: false; why: 'cap' | 'rate'; retryAfterS: number };

interface Bucket {
  tokens: number;
  at: number;
}

/** Clients kept at most (the oldest bucket goes first past it), so spoofed addresses cannot grow memory. */
const MAX_TRACKED = 100_000;

export class FairShare {
  private readonly held = new Map<string, Set<string>>();
  private readonly holder = new Map<string, string>();
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly limits: FairShareLimits) {}

  /** Whether `client` may claim now; does not take anything. */
  check(client: string, now: number): ShareVerdict {
    const { maxPerClient, claimsPerMinute } = this.limits;
    if (maxPerClient > 0 && (this.held.get(client)?.size ?? 0) >= maxPerClient) return { ok: false, why: 'cap', retryAfterS: 60 };
    if (claimsPerMinute > 0) {
      const tokens = this.tokens(client, now);
      if (tokens < 1) return { ok: false, why: 'rate', retryAfterS: Math.ceil(((1 - tokens) * 60) / claimsPerMinute) };
    }
    return { ok: true };
  }

  /** Takes one claim from `client`'s rate (after `check` said ok). */
  spend(client: string, now: number): void {
    if (this.limits.claimsPerMinute <= 0) return;
    const tokens = this.tokens(client, now) - 1;
    this.buckets.delete(client);
    if (this.buckets.size >= MAX_TRACKED) this.buckets.delete(this.buckets.keys().next().value!);
    this.buckets.set(client, { tokens, at: now });
  }

  /** `client` holds `key`: a container, or a place in the waiting line that will become one. */
  hold(client: string, key: string): void {
    let keys = this.held.get(client);
    if (!keys) this.held.set(client, (keys = new Set()));
    keys.add(key);
    this.holder.set(key, client);
  }

  /** `key` is given up (container gone, place in line left); releasing an unknown key is a no-op. */
  release(key: string): void {
    const client = this.holder.get(key);
    if (client === undefined) return;
    this.holder.delete(key);
    const keys = this.held.get(client)!;
    keys.delete(key);
    if (keys.size === 0) this.held.delete(client);
  }

  holding(client: string): number {
    return this.held.get(client)?.size ?? 0;
  }

  private tokens(client: string, now: number): number {
    const { claimsPerMinute, burst } = this.limits;
    const bucket = this.buckets.get(client);
    if (!bucket) return burst;
    return Math.min(burst, bucket.tokens + ((now - bucket.at) / 60_000) * claimsPerMinute);
  }
}
