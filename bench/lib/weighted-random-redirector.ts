/**
 * The baseline of bench:redirect: a plain weighted-random redirector, the textbook way. It polls
 * each node's /api/stats every period and sends each visitor to a node picked at random with
 * weight = the node's room from the last poll, keeping path and query. No accounting of its own
 * sends between polls. Usage: node --import tsx bench/lib/weighted-random-redirector.ts PORT PERIOD_S NODE_URL...
 */
import { createServer } from 'node:http';

const [portArg, periodArg, ...nodes] = process.argv.slice(2);
const rooms = new Map<string, number>(nodes.map((n) => [n, 0]));

async function poll(): Promise<void> {
  await Promise.all(
    nodes.map(async (n) => {
      try {
        const res = await fetch(`${n}/api/stats`, { signal: AbortSignal.timeout(1000) });
        const stats = (await res.json()) as { room?: number; available?: number };
        rooms.set(n, stats.room ?? stats.available ?? 0);
      } catch {
        rooms.set(n, 0);
      }
    }),
  );
}

function choose(): string | undefined {
  let total = 0;
  for (const r of rooms.values()) total += r;
  if (total <= 0) return undefined;
  let pick = Math.random() * total;
  for (const [n, r] of rooms) {
    pick -= r;
    if (pick < 0) return n;
  }
  return nodes[nodes.length - 1];
}

await poll();
setInterval(() => void poll(), Number(periodArg) * 1000);
createServer((req, res) => {
  const node = choose();
  if (!node) {
    res.writeHead(429, { 'Retry-After': '5', 'Content-Type': 'text/plain' }).end('every node is full\n');
    return;
  }
  res.writeHead(302, { Location: node + (req.url ?? '/') }).end();
}).listen(Number(portArg), '127.0.0.1');
