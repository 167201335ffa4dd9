/** Fair shares (pure) and the client address they count by. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clientAddress, clientKey, trustedProxies } from '../../shared/client-address.js';
import { ConfigError } from '../../shared/errors.js';
import { FairShare } from '../../orchestrator/fair-share.js';

test('a client holds at most its cap; releasing frees a place; other clients are unaffected', () => {
  const shares = new FairShare({ maxPerClient: 2, claimsPerMinute: 0, burst: 2 });
  shares.hold('a', 'c1');
  assert.deepEqual(shares.check('a', 0), { ok: true });
  shares.hold('a', 'c2');
  assert.deepEqual(shares.check('a', 0), { ok: false, why: 'cap', retryAfterS: 60 });
  assert.deepEqual(shares.check('b', 0), { ok: true });
  shares.release('c1');
  shares.release('unknown');
  assert.deepEqual(shares.check('a', 0), { ok: true });
  assert.equal(shares.holding('a'), 1);
});

test('rate: a burst, then claims at the sustained rate, with a Retry-After that is right', () => {
  const shares = new FairShare({ maxPerClient: 0, claimsPerMinute: 6, burst: 3 });
  for (let i = 0; i < 3; i++) {
    assert.equal(shares.check('a', 0).ok, true);
    shares.spend('a', 0);
  }
  assert.deepEqual(shares.check('a', 0), { ok: false, why: 'rate', retryAfterS: 10 });
  assert.equal(shares.check('a', 9_000).ok, false);
  assert.equal(shares.check('a', 10_000).ok, true, 'one claim every 10 s');
});

test('client address: X-Forwarded-For believed only from trusted proxies, walked from the right', () => {
  const trusted = trustedProxies(['127.0.0.0/8', '::1', '10.1.0.0/16']);
  assert.equal(clientAddress('203.0.113.9', '1.2.3.4', trusted), '203.0.113.9', 'an untrusted peer cannot name another address');
  assert.equal(clientAddress('127.0.0.1', '198.51.100.7', trusted), '198.51.100.7');
  assert.equal(clientAddress('::ffff:127.0.0.1', '6.6.6.6, 198.51.100.7, 10.1.2.3', trusted), '198.51.100.7', 'spoofed left entries ignored');
  assert.equal(clientAddress('127.0.0.1', 'garbage', trusted), '127.0.0.1');
  assert.equal(clientAddress('127.0.0.1', undefined, trusted), '127.0.0.1');
  assert.throws(() => trustedProxies(['10.0.0.0/33']), ConfigError);
  assert.throws(() => trustedProxies(['example.com']), ConfigError);
});

test('client address: answers remembered per list of trusted proxies, and right past the memory\'s bound', () => {
  const loopback = trustedProxies(['127.0.0.0/8']);
  const none = trustedProxies([]);
  for (let round = 0; round < 2; round++) {
    assert.equal(clientAddress('127.0.0.1', '198.51.100.7', loopback), '198.51.100.7');
    assert.equal(clientAddress('127.0.0.1', '198.51.100.7', none), '127.0.0.1', 'what one list trusts, another need not');
  }
  // a trusted front naming many addresses (a hostile chain): each hop is checked, none is trusted
  for (let i = 0; i < 5000; i++) {
    const hop = `203.0.${i >> 8}.${i & 255}`;
    assert.equal(clientAddress('127.0.0.1', `6.6.6.6, ${hop}`, loopback), hop);
  }
  assert.equal(clientAddress('127.0.0.5', '198.51.100.8', loopback), '198.51.100.8');
  assert.equal(clientAddress('10.0.0.1', '198.51.100.8', loopback), '10.0.0.1');
});

test('client key: IPv4 as is, IPv6 by its /64', () => {
  assert.equal(clientKey('198.51.100.7'), '198.51.100.7');
  assert.equal(clientKey('not:an:address'), 'not:an:address');
  assert.equal(clientKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(clientKey('2001:db8:1:2::ffff'), '2001:db8:1:2::/64');
  assert.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(clientKey('::1'), '0:0:0:0::/64');
});

test('on the real engine: one client hammering /api/spawn gets its cap and no more, while others land at once', async (t) => {
  const { requireImage, TINY_IMAGE } = await import('../helpers/docker.js');
  const { http, startNode, waitForWarm } = await import('./harness.js');
  await requireImage(TINY_IMAGE);
  const node = await startNode('share', ['--pool-size', '12', '--max-per-client', '3', '--spawn-wait', '0']);
  t.after(() => node.stop());
  await waitForWarm(node, 'default', 12, 90_000);
  const spawn = (client: string) => http(`${node.proxy.url}/api/spawn`, { method: 'POST', body: '{}', headers: { 'X-Forwarded-For': client } });
  const [hammer, others] = await Promise.all([
    Promise.all(Array.from({ length: 8 }, () => spawn('198.51.100.1'))),
    Promise.all(Array.from({ length: 9 }, (_, i) => spawn(`203.0.113.${i + 1}`))),
  ]);
  const ok = hammer.filter((r) => r.status === 200).length;
  assert.equal(ok, 3, `the hammering client got ${ok} containers: ${hammer.map((r) => r.status).join(' ')}`);
  for (const r of hammer.filter((x) => x.status !== 200)) {
    assert.equal(r.status, 429);
    assert.ok(Number(r.headers['retry-after']) > 0, 'Retry-After given');
    assert.match(r.body, /already holds 3 containers|too many new containers/);
  }
  assert.deepEqual(others.map((r) => r.status), Array<number>(9).fill(200), 'every other client landed');
  // In a browser the same refusal is a page about the visitor's share, not one saying the node is full.
  const page = await http(`${node.proxy.url}/spawn/`, { headers: { 'X-Forwarded-For': '198.51.100.1' } });
  assert.equal(page.status, 429);
  assert.match(page.headers['content-type'] as string, /text\/html/);
  assert.match(page.body, /Too many notebooks from your address/);
  assert.match(page.body, /already holds 3 containers|too many new containers/);
  const ids = new Set([...hammer, ...others].filter((r) => r.status === 200).map((r) => (JSON.parse(r.body) as { id: string }).id));
  assert.equal(ids.size, 12, 'twelve visitors, twelve containers, none handed out twice');
});
