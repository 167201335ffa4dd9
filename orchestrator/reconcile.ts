/**
 * One reconcile step, pure: compares what the engine runs, what the pool core believes and what the
 * proxy routes, and returns the actions that bring them back in line. The runtime runs it on a
 * timer, after engine events, and whenever the connection to the engine comes back, so its own
 * bookkeeping is never trusted past what the engine last said.
 */
import type { RouteData } from '../shared/types.js';
import { LABELS, type FoundContainer } from './backend.js';
import type { ContainerState } from './pool.js';
import { routePath, visitorIdOfRoute } from './visitor.js';

export interface KnownContainer {
  id: string;
  pool: string;
  state: ContainerState;
  containerId?: string;
  target?: string;
  /** When the engine's create/start answered (undefined while that call is in flight). */
  startedAt?: number;
  /**
   * When the runtime last knew this claimed container's route to be in the proxy (undefined while
   * the claim's own route write is in flight): a route written after the listing may be missing
   * from it without being lost.
   */
  routedAt?: number;
}

export interface ReconcileInput {
  instance: string;
  known: readonly KnownContainer[];
  engine: readonly FoundContainer[];
  /**
   * When the engine was asked for its list. Containers whose start answered after that may be
   * missing from the list without being gone, so they are not judged this time.
   */
  listedAt: number;
  /** The proxy's routes; undefined when only the engine was read. */
  routes?: Readonly<Record<string, RouteData>>;
}

export type ReconcileAction =
  /** A container we hand out (warm) or a visitor's (claimed) is no longer running. */
  | { kind: 'replace-dead'; id: string; reason: 'exited' | 'vanished' }
  /** A warm container on a machine that is leaving the cluster (drained, paused): start it elsewhere. */
  | { kind: 'replace-leaving'; id: string }
  /** A container of this instance that nobody knows (a removal given up, a start cut short). */
  | { kind: 'remove-unknown'; containerId: string }
  /** A route of this instance with no claimed container behind it. */
  | { kind: 'delete-route'; path: string }
  /** A claimed container whose route is missing or points elsewhere. */
  | { kind: 'add-route'; id: string };

export interface ReconcileResult {
  actions: ReconcileAction[];
  /** Visitor id -> the proxy's last activity (ms), for culling. */
  lastActivity: Map<string, number>;
}

export function reconcile(input: ReconcileInput): ReconcileResult {
  const actions: ReconcileAction[] = [];
  const onEngine = new Map<string, FoundContainer>();
  for (const c of input.engine) {
    const id = c.labels[LABELS.user];
    if (id) onEngine.set(id, c);
  }
  const known = new Map(input.known.map((c) => [c.id, c]));

  for (const c of input.known) {
    if (c.state !== 'warm' && c.state !== 'claimed') continue;
    if (c.startedAt === undefined || c.startedAt > input.listedAt) continue;
    const found = onEngine.get(c.id);
    if (!found) actions.push({ kind: 'replace-dead', id: c.id, reason: 'vanished' });
    else if (!found.running) actions.push({ kind: 'replace-dead', id: c.id, reason: 'exited' });
    else if (found.leaving && c.state === 'warm') actions.push({ kind: 'replace-leaving', id: c.id });
  }
  for (const c of input.engine) {
    const id = c.labels[LABELS.user];
    if (!id || !known.has(id)) actions.push({ kind: 'remove-unknown', containerId: c.containerId });
  }

  const lastActivity = new Map<string, number>();
  if (input.routes) {
    for (const [path, data] of Object.entries(input.routes)) {
      const id = visitorIdOfRoute(path);
      if (!id || data.instance !== input.instance) continue;
      const c = known.get(id);
      if (!c || (c.state !== 'claimed' && c.state !== 'removing')) {
        actions.push({ kind: 'delete-route', path });
        continue;
      }
      if (data.last_activity) lastActivity.set(id, Date.parse(data.last_activity) || 0);
    }
    const dead = new Set(actions.flatMap((a) => (a.kind === 'replace-dead' ? [a.id] : [])));
    for (const c of input.known) {
      if (c.state !== 'claimed' || dead.has(c.id) || c.routedAt === undefined || c.routedAt > input.listedAt) continue;
      const route = input.routes[routePath(c.id)];
      if (!route || (c.target && route.target !== c.target)) actions.push({ kind: 'add-route', id: c.id });
    }
  }
  return { actions, lastActivity };
}
