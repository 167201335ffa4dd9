/**
 * Stand-in nodes for the redirector benchmark: node:http servers that answer a node's
 * /api/stats (and tmpnb's /stats) with a capacity and the room left, take a visitor on any other
 * path (room goes down by one) and answer POST /api/spawn with a URL.
 */
import { createServer, type Server } from 'node:http';

export interface StandInNode {
  url: string;
  capacity: number;
  room: number;
  /** Visitors that arrived (followed a redirect here) since the last reset. */
  visitors: number;
  /** Visitors that arrived while the room was already 0. */
  overflow: number;
  statsPolls: number;
  reset(capacity: number): void;
  close(): Promise<void>;
}

export async function startStandInNode(capacity: number): Promise<StandInNode> {
  let server: Server | undefined = undefined;
  const node: StandInNode = {
    url: '',
    capacity,
    room: capacity,
    visitors: 0,
    overflow: 0,
    statsPolls: 0,
    reset(c: number) {
      node.capacity = c;
      node.room = c;
      node.visitors = 0;
      node.overflow = 0;
    },
    close: () => new Promise<void>((resolve) => {
      server!.closeAllConnections();
      server!.close(() => resolve());
    }),
  };
  server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/api/stats' || path === '/stats') {
      node.statsPolls++;
      const claimed = node.capacity - node.room;
      const body = JSON.stringify({
        available: node.room,
        capacity: node.capacity,
        version: 'stand-in',
        container_image: 'stand-in',
        claimed,
        starting: 0,
        room: node.room,
        waiting: 0,
        draining: false,
        pools: {},
      });
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(body);
      return;
    }
    if (req.method === 'POST' && /^\/api\/spawn\/?$/.test(path)) {
      if (node.room > 0) node.room--;
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ url: `/user/standin${node.visitors++}/tree` }));
      return;
    }
    node.visitors++;
    if (node.room > 0) node.room--;
    else node.overflow++;
    res.writeHead(200, { 'Content-Type': 'text/plain' }).end('landed\n');
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  node.url = `http://127.0.0.1:${port}`;
  return node;
}
