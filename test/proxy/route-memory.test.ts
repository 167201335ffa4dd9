import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { RouteService } from '../../proxy/route-service.js';
import { silentLogger } from '../../shared/log.js';

// bench:proxy holds the proxy to an RSS under 150 MB at 100,000 routes; this guards the part the
// route table owns, without a bench: the heap a route to its own target costs (383 bytes when
// written, 598 in 0de931c).
test('a route of the usual shape costs under 420 bytes of heap', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const routes = 50_000;
  gc();
  const before = process.memoryUsage().heapUsed;
  const service = await RouteService.open(undefined, { hostRouting: false, activityFlushMs: 1000, resyncMs: 60_000, log: silentLogger() });
  for (let i = 0; i < routes; i++) {
    // As the REST API hands them over: parsed from each request's own body.
    const data = JSON.parse(`{"target":"http://10.0.${i >> 8 & 255}.7:${8000 + (i % 1000)}"}`) as unknown;
    await service.add(`/user/r${i.toString(36)}${'x'.repeat(10)}`, data);
  }
  gc();
  const perRoute = (process.memoryUsage().heapUsed - before) / routes;
  assert.equal(service.size, routes);
  assert.ok(perRoute < 420, `${perRoute.toFixed(0)} bytes of heap per route`);
  await service.close();
});
