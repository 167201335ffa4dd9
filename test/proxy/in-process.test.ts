// `nbpool up` hands the proxy's default target to the orchestrator in the same process: requests
// routed there reach its handler without an HTTP hop. Here the target's port has nobody listening,
// so an answer can only have come in-process; other routes and upgrades still go over the network.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { freePort } from '../helpers/net.js';
import { startTestProxy, startUpstream } from './helpers.js';

test('requests routed to the in-process target reach its handler with the visitor\'s own socket; other routes are forwarded', async () => {
  const nobody = `http://127.0.0.1:${await freePort()}`;
  const proxy = await startTestProxy(['--default-target', nobody]);
  const upstream = await startUpstream('elsewhere');
  try {
    const before = await fetch(`${proxy.publicUrl}/spawn/`);
    assert.equal(before.status, 503, 'nobody listens at the target yet');
    proxy.serveInProcess(nobody, (req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ url: req.url, forwardedFor: req.headers['x-forwarded-for'] ?? null, peer: req.socket.remoteAddress }));
    });
    const res = await fetch(`${proxy.publicUrl}/spawn/tree?x=1`, { method: 'POST', body: 'ignored' });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { url: '/spawn/tree?x=1', forwardedFor: null, peer: '127.0.0.1' }, 'the request as the visitor sent it, no proxy headers added');
    await proxy.routes.addRoute('/user/other', { target: upstream.url });
    const other = await fetch(`${proxy.publicUrl}/user/other/x`);
    assert.equal(other.status, 200);
    assert.match(await other.text(), /elsewhere/);
  } finally {
    await upstream.close();
    await proxy.close();
  }
});
