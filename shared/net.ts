/** Network helpers shared by the programs and their tests. */
import { createServer } from 'node:net';

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
