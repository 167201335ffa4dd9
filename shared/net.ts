/** Network helpers shared by the programs and their tests. */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { ConfigError } from './errors.js';

/** Where freeLoopbackPort looks, up to the start of the kernel's ephemeral range. */
const LOWEST_PICKED_PORT = 20000;

/** The first port of the kernel's ephemeral range (Linux; 32768, its default, elsewhere). */
export function ephemeralRangeStart(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > 1024) return low;
  } catch {
    // not Linux: the default below
  }
  return 32768;
}

/** Listens on 127.0.0.1:port (0: any) and closes again; resolves the port, or undefined when it is taken. */
function tryPort(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => {
      const bound = (server.address() as AddressInfo).port;
      server.close(() => resolve(bound));
    });
  });
}

/**
 * A port free on 127.0.0.1 right now, for wiring processes whose address must be known before they
 * listen. Picked below the kernel's ephemeral range: a port that listen(0) hands out comes from
 * that range, where the local end of any outgoing connection (to Redis, to a container) may take it
 * before its process binds it. A clean-clone CI run lost `nbpool up` to EADDRINUSE that way.
 */
export async function freeLoopbackPort(): Promise<number> {
  const end = ephemeralRangeStart();
  for (let attempt = 0; end - LOWEST_PICKED_PORT > 100 && attempt < 50; attempt++) {
    const port = await tryPort(LOWEST_PICKED_PORT + Math.floor(Math.random() * (end - LOWEST_PICKED_PORT)));
    if (port !== undefined) return port;
  }
  // No room below the range (an unusual ip_local_port_range), or all tried were taken.
  const port = await tryPort(0);
  if (port === undefined) throw new Error('no free port on 127.0.0.1');
  return port;
}

/** host:port where a local client reaches a listening server (wildcard addresses become loopback). */
export function reachableAddress(server: Server): string {
  const address = server.address() as AddressInfo;
  const host = address.address === '::' || address.address === '0.0.0.0' ? '127.0.0.1' : address.address;
  return `${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}

/**
 * Listens on host:port (an empty host or `*`: every interface; port 0: any free one) and resolves
 * the reachable host:port. A failure (address in use, no such address) is one clear ConfigError.
 */
export function listenOn(server: Server, port: number, host: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException) => reject(new ConfigError(`cannot listen on ${host || '*'}:${port}: ${err.message}`));
    server.once('error', fail);
    server.listen({ port, host: host === '' || host === '*' ? undefined : host }, () => {
      server.off('error', fail);
      resolve(reachableAddress(server));
    });
  });
}

/**
 * Stops accepting and resolves once every connection is gone: idle ones close now, busy ones get
 * `graceMs` to finish before they are cut (without it, as long as they need).
 */
export function closeServer(server: Server, graceMs?: number): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    const timer = graceMs === undefined ? undefined : setTimeout(() => server.closeAllConnections(), graceMs);
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}
