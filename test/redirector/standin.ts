/**
 * Stand-in nodes for redirector tests: small HTTP servers on 127.0.0.1:0 answering /api/stats
 * (figures the test sets), POST /api/spawn (a relative /user/<id>/ URL, taking one room) and every
 * other GET with a page naming the node, path and query it received.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StandInStats {
  available: number;
  capacity: number;
  room?: number;
  claimed?: number;
  draining?: boolean;
}

export interface StandInNode {
  name: string;
  url: string;
  stats: StandInStats;
  /** Paths (with query) of the requests this node received, other than /api/stats; spawns as `POST <path>`. */
  visits: string[];
  spawns: number;
  /** When set, /api/stats never answers (a hung node). */
  hang: boolean;
  /** Status POST /api/spawn answers with (200 by default; 429 for a full node). */
  spawnStatus: number;
  /** The `url` a 200 spawn answers with, when set (a broken node); else `/user/<name>-<n>/`. */
  spawnUrl?: string;
  close(): Promise<void>;
}

export async function startStandIn(name: string, stats: StandInStats, { tmpnbOnly = false } = {}): Promise<StandInNode> {
  const node: StandInNode = {
    name,
    url: '',
    stats,
    visits: [],
    spawns: 0,
    hang: false,
    spawnStatus: 200,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    if (path === '/api/stats') {
      if (node.hang) return; // never answers
      const s = node.stats;
      const body = tmpnbOnly
        ? { available: s.available, capacity: s.capacity, version: '0.1.0', container_image: 'tmpnb/minimal' }
        : { version: '0.1.0', container_image: 'nbpool/tiny:latest', claimed: 0, starting: 0, waiting: 0, draining: false, pools: {}, ...s };
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
      return;
    }
    if (req.method === 'POST' && /^\/api\/spawn\/?(\?|$)/.test(path)) {
      req.resume();
      node.visits.push(`POST ${path}`);
      if (node.spawnStatus !== 200) {
        res.writeHead(node.spawnStatus, { 'Content-Type': 'application/json', 'Retry-After': '1' }).end(JSON.stringify({ status: node.spawnStatus, message: 'full' }));
        return;
      }
      node.spawns++;
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ url: node.spawnUrl ?? `/user/${name}-${node.spawns}/` }));
      return;
    }
    node.visits.push(path);
    res.writeHead(200, { 'Content-Type': 'text/plain' }).end(`${name} ${path}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  node.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return node;
}
