import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { ephemeralRangeStart, freeLoopbackPort } from '../../shared/net.js';

test('a free port is picked below the kernel\'s ephemeral range, where no outgoing connection takes it, and can be listened on', async () => {
  const end = ephemeralRangeStart();
  const ports = new Set<number>();
  for (let i = 0; i < 20; i++) {
    const port = await freeLoopbackPort();
    assert.ok(port >= 20000 && port < end, `port ${port}, ephemeral range from ${end}`);
    ports.add(port);
    const server = createServer().listen(port, '127.0.0.1');
    await once(server, 'listening');
    server.close();
  }
  assert.ok(ports.size > 15, 'picked at random: concurrent tests rarely meet');
});
