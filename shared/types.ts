/** Types that cross program boundaries: the proxy's route records and a node's /api/stats. */

/**
 * A route as configurable-http-proxy's REST API carries it: a target plus any extra fields the
 * client stored (the orchestrator stores pool, container id and times). `last_activity` is ISO 8601.
 */
export interface RouteData {
  target: string;
  last_activity?: string;
  [extra: string]: unknown;
}

/**
 * How the orchestrator (or any tool) drives a proxy's route table. The HTTP implementation talks
 * CHP's REST API; `nbpool up` hands the orchestrator an in-process one with no network hop.
 */
export interface RouteTableClient {
  /** Adds or replaces the route for `path` (a URL path prefix such as `/user/abc`). */
  addRoute(path: string, data: RouteData): Promise<void>;
  /** Removes the route; removing an absent route is not an error. */
  deleteRoute(path: string): Promise<void>;
  /** All routes, or those whose last activity is older than `inactiveSince`. */
  getRoutes(inactiveSince?: Date): Promise<Record<string, RouteData>>;
}

/** One pool's figures in /api/stats. */
export interface PoolStats {
  image: string;
  /** Warm containers wanted (--pool-size). */
  size: number;
  warm: number;
  claimed: number;
  starting: number;
  /** Visitors waiting for a container of this pool. */
  waiting: number;
  /** Containers that failed to start or answer, since start. */
  failures: number;
  /** Warm containers wanted now: the size, or an auto pool's demand target. */
  target?: number;
  /** Sized by demand (`--pool-size auto`). */
  auto?: boolean;
  /** Claims per minute the target plans for (recent peak, fading). */
  claim_rate_per_min?: number;
  /** Start time the target plans with, ms. */
  start_ms?: number;
  /** Over the last 10 minutes: visitors, served warm at once, waited; hit rate = warm / visitors. */
  claims_10m?: number;
  warm_hits_10m?: number;
  waits_10m?: number;
  hit_rate_10m?: number | null;
  wait_p50_ms?: number | null;
  wait_max_ms?: number | null;
  /** Set while refills are backing off after repeated failures. */
  backoff_until?: string;
  /** Replacements held back while a burst of claims is served (--refill-delay). */
  refill_paused: boolean;
  /** Why the last start failed, while no start has succeeded since (the engine's words). */
  last_failure?: string;
  draining: boolean;
}

/**
 * A node's GET /api/stats. `available`, `capacity`, `version` and `container_image` keep tmpnb's
 * names and meanings so tmpnb-redirector can read them; the rest is ours.
 */
export interface NodeStats {
  /** Warm containers ready to hand out now (all pools). */
  available: number;
  /** Containers this node may run at once (warm + claimed + starting): --max-containers. */
  capacity: number;
  version: string;
  container_image: string;
  claimed: number;
  starting: number;
  /** New visitors this node can still take: capacity minus claimed (0 while its container engine is away). */
  room: number;
  waiting: number;
  draining: boolean;
  /** The node's container engine is gone: its containers are likely dead, and it starts none. */
  engine_lost: boolean;
  pools: Record<string, PoolStats>;
}

/**
 * Why a node answered POST /api/spawn with 429 for this client alone (the JSON `reason`): it holds
 * its --max-per-client containers, or claimed faster than --claims-per-minute. Without a reason, a
 * 429 means the node is full. A redirector passes these on to the client instead of trying
 * another node.
 */
export const CLIENT_LIMIT_REASONS = ['client_cap', 'client_rate'] as const;
export type ClientLimitReason = (typeof CLIENT_LIMIT_REASONS)[number];
