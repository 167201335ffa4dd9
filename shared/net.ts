/** Network helpers shared by the programs and their tests. */
import type { Server } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { ConfigError } from './errors.js';

/** A port free on 127.0.0.1 right now (for wiring processes whose address must be known first). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
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
