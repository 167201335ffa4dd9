/** bench/lib/cpu-profile.ts: samples go to the category of their nearest known frame, inside the windows only. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attribute, totalMs, type CpuProfile } from '../../bench/lib/cpu-profile.js';

const frame = (functionName: string, url = '') => ({ functionName, url });

/**
 * (root) -> parserOnIncoming (node:_http_server) -> handleRequest (koa) -> claim (orchestrator) -> writev
 *                                                 \-> writev (node:net, under no known frame)
 *        -> request (docker-modem) -> inspect (node:internal/util/inspect)
 *        -> (garbage collector), (idle)
 */
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame('(root)'), children: [2, 6, 8, 9] },
    { id: 2, callFrame: frame('parserOnIncoming', 'node:_http_server'), children: [3, 5] },
    { id: 3, callFrame: frame('handleRequest', 'file:///x/node_modules/koa/lib/application.js'), children: [4] },
    { id: 4, callFrame: frame('claim', 'file:///x/dist/orchestrator/orchestrator.js'), children: [10] },
    { id: 10, callFrame: frame('writev', 'node:net') },
    { id: 5, callFrame: frame('writev', 'node:net') },
    { id: 6, callFrame: frame('buildRequest', 'file:///x/node_modules/docker-modem/lib/modem.js'), children: [7] },
    { id: 7, callFrame: frame('inspect', 'node:internal/util/inspect') },
    { id: 8, callFrame: frame('(garbage collector)') },
    { id: 9, callFrame: frame('(idle)') },
  ],
  startTime: 1000,
  // samples at 1000+100=1100, 1300, 1600, 2000, 2500, 3100; each lasts until the next (the last until endTime)
  samples: [10, 5, 7, 8, 9, 4],
  timeDeltas: [100, 200, 300, 400, 500, 600],
  endTime: 3800,
};

test('each sample goes to its nearest known frame, node internals to whoever called them', () => {
  const a = attribute(profile, [{ startUs: 0, endUs: 10_000 }]);
  assert.equal(a['orchestrator (claim, pool, handlers)'], 0.2 + 0.7); // writev under claim, and claim itself
  assert.equal(a['node:http server and sockets, under none of the above'], 0.3);
  assert.equal(a['engine calls: docker-modem\'s debug util.inspect'], 0.4);
  assert.equal(a.GC, 0.5);
  assert.equal(a.idle, 0.6);
  assert.equal(a['koa and @koa/router'], 0);
  assert.equal(Math.round(totalMs(a) * 1000), 2100);
  assert.equal(Math.round(totalMs(a, true) * 1000), 2700);
});

test('only the part of a sample inside a window counts', () => {
  // samples: 1100-1300 writev under claim, 1300-1600 writev, 1600-2000 inspect, 2000-2500 GC, 2500-3100 idle, 3100-3800 claim
  const a = attribute(profile, [{ startUs: 1250, endUs: 1650 }, { startUs: 3000, endUs: 3200 }]);
  assert.equal(Math.round(a['orchestrator (claim, pool, handlers)'] * 1000), 50 + 100);
  assert.equal(a['node:http server and sockets, under none of the above'], 0.3);
  assert.equal(Math.round(a['engine calls: docker-modem\'s debug util.inspect'] * 1000), 50);
  assert.equal(a.GC, 0); // 2000-2500, between the windows
  assert.equal(Math.round(a.idle * 1000), 100); // 2500-3100: its last 100 µs are in the second window
});
