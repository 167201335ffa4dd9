/**
 * Churn: thousands of WebSockets closed every way (client, upstream, TCP reset mid-frame, upstream
 * reset) plus aborted HTTP requests through a proxy process, whose open file descriptors must
 * come back to their baseline afterwards.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { HttpRouteTableClient } from '../../shared/route-client.js';
import { CHURN_MODES, churnSocket, fdCount, runChurn, startChurnUpstream, type ChurnUpstream } from '../helpers/churn.js';
import { waitFor } from '../helpers/net.js';
import { startChildProxy, TOKEN, type ChildProxy } from './helpers.js';

const PER_MODE = 400;
const ABORTED = 400;

describe('churn', () => {
  let upstream: ChurnUpstream;
  let proxy: ChildProxy;
  before(async () => {
    upstream = await startChurnUpstream();
    proxy = await startChildProxy(['--metrics-port', '0', '--metrics-ip', '127.0.0.1', '--log-level', 'info']);
    await new HttpRouteTableClient(proxy.apiUrl, TOKEN).addRoute('/user/churn', { target: upstream.url });
  });
  after(async () => {
    await proxy.stop();
    await upstream.close();
  });

  test('file descriptors return to baseline after thousands of WebSockets and aborted requests', async () => {
    const pid = proxy.child.pid!;
    // Warm up (agents, lazily loaded modules), then let idle keep-alive sockets expire.
    assert.equal(await churnSocket(`${proxy.publicUrl.replace('http', 'ws')}/user/churn/ws`, 'client-close'), true, 'a WebSocket opens and echoes');
    await fetch(`${proxy.publicUrl}/user/churn/x`).then((r) => r.text());
    await new Promise((r) => setTimeout(r, 800));
    const baseline = fdCount(pid);

    const { exchanged } = await runChurn(proxy.publicUrl, '/user/churn', PER_MODE, ABORTED);
    // Every WebSocket really opened and echoed before it was closed: a failed upgrade cannot pass.
    for (const mode of CHURN_MODES) assert.equal(exchanged[mode], PER_MODE, `${mode}: ${exchanged[mode]} of ${PER_MODE} WebSockets opened and echoed`);

    const metrics = async () => (await fetch(proxy.metricsUrl!)).text();
    await waitFor(async () => /nbpool_proxy_websockets_open\{program="proxy"\} 0\b/.test(await metrics()), { timeoutMs: 10_000, what: 'no WebSocket left open' });
    let now = 0;
    await waitFor(() => (now = fdCount(pid)) <= baseline, { timeoutMs: 15_000, intervalMs: 200, what: 'fds back to baseline' }).catch(() => {
      assert.fail(`open fds ${now} did not return to baseline ${baseline}: ${readdirSync(`/proc/${pid}/fd`).length}`);
    });
    // Still serving.
    assert.equal(await fetch(`${proxy.publicUrl}/user/churn/x`).then((r) => r.text()), 'ok');
  });
});
