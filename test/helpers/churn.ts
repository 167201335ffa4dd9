/**
 * Churn load through a proxy: thousands of WebSockets closed every way (client, upstream, TCP reset
 * mid-frame, upstream reset) plus HTTP requests the client abandons. Used by the churn test and by
 * bench:proxy (descriptors and RSS of each forwarding engine afterwards).
 */
import { readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';

export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

export interface ChurnUpstream {
  url: string;
  server: Server;
  close(): Promise<void>;
}

/** Upstream: answers 'close-me' by closing, 'reset-me' by resetting the TCP connection; /hang never answers, /drip never ends. */
export async function startChurnUpstream(): Promise<ChurnUpstream> {
  const server = createServer((req, res) => {
    if (req.url?.includes('/hang')) return;
    if (req.url?.includes('/drip')) {
      res.writeHead(200);
      const timer = setInterval(() => res.write('x'.repeat(1000)), 10);
      res.on('close', () => clearInterval(timer));
      return;
    }
    res.end('ok');
  });
  server.keepAliveTimeout = 300;
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => {
    ws.on('error', () => {});
    ws.on('message', (data) => {
      const text = data.toString();
      if (text === 'close-me') ws.close(1000, 'bye');
      else if (text === 'reset-me') (ws as unknown as { _socket: Socket })._socket.resetAndDestroy();
      else ws.send(data);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export const CHURN_MODES = ['client-close', 'upstream-close', 'client-reset-mid-frame', 'upstream-reset'] as const;
export type ChurnMode = (typeof CHURN_MODES)[number];

/**
 * One WebSocket through the proxy, ended the given way. Resolves true once the client side is
 * closed after a real exchange (opened and echoed), false when it never opened or echoed.
 */
export function churnSocket(url: string, mode: ChurnMode): Promise<boolean> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    let exchanged = false;
    const done = () => resolve(exchanged);
    ws.on('error', () => {});
    ws.on('close', done);
    ws.on('unexpected-response', done);
    ws.on('open', () => {
      ws.send('ping');
      ws.once('message', () => {
        exchanged = true;
        const socket = (ws as unknown as { _socket: Socket })._socket;
        switch (mode) {
          case 'client-close':
            ws.close();
            break;
          case 'upstream-close':
            ws.send('close-me');
            break;
          case 'upstream-reset':
            ws.send('reset-me');
            break;
          case 'client-reset-mid-frame':
            // The header of a masked 64 KiB binary frame and a few bytes of it, then a TCP reset.
            socket.write(Buffer.from([0x82, 0xfe, 0xff, 0xff, 1, 2, 3, 4, 9, 9, 9]), () => {
              socket.resetAndDestroy();
              done();
            });
            break;
        }
      });
    });
  });
}

/** Runs `task(i)` for i < count, `concurrency` at a time; returns how many resolved true. */
export async function inBatches(count: number, concurrency: number, task: (i: number) => Promise<boolean | void>): Promise<number> {
  let next = 0;
  let succeeded = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) if ((await task(next++)) === true) succeeded++;
    }),
  );
  return succeeded;
}

/** An HTTP request abandoned by the client after `afterMs`: before any answer (/hang) or mid-response (/drip). */
export async function abortedRequest(url: string, afterMs: number): Promise<void> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), afterMs);
  try {
    const res = await fetch(url, { signal: controller.signal });
    await res.arrayBuffer();
  } catch {
    // Aborted, as intended.
  } finally {
    clearTimeout(timer);
  }
}

export interface ChurnCounts {
  /** WebSockets that opened and echoed, per way of closing. */
  exchanged: Record<ChurnMode, number>;
  aborted: number;
}

/** The whole churn: `perMode` WebSockets closed each way, then `aborted` abandoned requests (half /hang, half /drip). */
export async function runChurn(publicUrl: string, prefix: string, perMode: number, aborted: number, concurrency = 40): Promise<ChurnCounts> {
  const wsUrl = `${publicUrl.replace('http', 'ws')}${prefix}/ws`;
  const exchanged = {} as Record<ChurnMode, number>;
  for (const mode of CHURN_MODES) exchanged[mode] = await inBatches(perMode, concurrency, () => churnSocket(wsUrl, mode));
  const half = Math.floor(aborted / 2);
  await inBatches(half, concurrency, (i) => abortedRequest(`${publicUrl}${prefix}/hang/${i}`, 30));
  await inBatches(aborted - half, concurrency, (i) => abortedRequest(`${publicUrl}${prefix}/drip/${i}`, 40));
  return { exchanged, aborted };
}
