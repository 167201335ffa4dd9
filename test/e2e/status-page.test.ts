// The operator status pages, looked at in a real browser while visitors claim containers: the
// orchestrator's (pools) and the redirector's (nodes). Screenshots go to test-artifacts/.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { parseRedirectorConfig } from '../../redirector/config.js';
import { startRedirector, type RunningRedirector } from '../../redirector/server.js';
import { silentLogger } from '../../shared/log.js';
import { requireImage, TINY_IMAGE } from '../helpers/docker.js';
import { waitFor } from '../helpers/net.js';
import { http, startNode, stats, waitForWarm, type Node } from '../orchestrator/harness.js';

const TOKEN = 'status-secret';
const artifacts = new URL('../../test-artifacts/', import.meta.url).pathname;
let node: Node;
let redirector: RunningRedirector;
let browser: Browser;

before(async () => {
  await requireImage(TINY_IMAGE);
  mkdirSync(artifacts, { recursive: true });
  node = await startNode('status', ['--pool-size', '4', '--max-containers', '14', '--admin-auth-token', TOKEN, '--cull-timeout', '6', '--cull-period', '1']);
  const { config } = parseRedirectorConfig(
    ['--ip', '127.0.0.1', '--port', '0', '--admin-ip', '127.0.0.1', '--admin-port', '0', '--stats-period', '0.5', '--state-store', 'memory:', '--node', node.proxy.url],
    { ADMIN_AUTH_TOKEN: TOKEN },
  );
  redirector = await startRedirector(config, silentLogger());
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
});
after(async () => {
  await browser?.close();
  await redirector?.close();
  await node?.stop();
});

/** Waits until the element's text matches, as a person watching the page would. */
function shows(page: Page, selector: string, pattern: RegExp): Promise<string> {
  return waitFor(async () => {
    const text = (await page.textContent(selector)) ?? '';
    return pattern.test(text) ? text : undefined;
  }, { timeoutMs: 10_000, what: `${selector} to show ${pattern}` });
}

/**
 * Visitors arriving through the stable link, one after another, each once the node has a warm
 * container (as the redirector sends them only where there is room): every one lands at once,
 * however slowly this machine starts containers today. Resolves to how many landed.
 */
async function arrive(visitors: number): Promise<number> {
  let landed = 0;
  for (let i = 0; i < visitors; i++) {
    await waitFor(async () => ((await stats(node)).pools.default?.warm ?? 0) >= 1 || undefined, { timeoutMs: 30_000, intervalMs: 50, what: 'a warm container' });
    const sent = await http(`${redirector.url}/spawn/`);
    assert.equal(sent.status, 302, 'the redirector sends the visitor to the node');
    const claim = await http(String(sent.headers.location));
    if (claim.status === 302) landed++;
  }
  return landed;
}

test('the orchestrator status page shows pools, claims and their levels over time, live', async () => {
  await waitForWarm(node, 'default', 4);
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  await page.goto(`${node.orch.adminUrl}/#token=${TOKEN}`);
  const landed = await arrive(6);
  assert.ok(landed >= 5, `visitors landed at once: ${landed} of 6`);
  const tiles = await shows(page, '#tiles', /\d+ \/ [\d.]+ ms/);
  assert.match(tiles ?? '', /claimed\s*\d+/);
  // The page samples once a second: the last claims show on one of its next refreshes.
  const claimsPerMinute = () => page.textContent('#tiles').then((text) => Number(/claims \/ min\s*(\d+)/.exec(text ?? '')?.[1]));
  await waitFor(async () => (await claimsPerMinute()) >= landed || undefined, { timeoutMs: 10_000, what: `claims / min to count the ${landed} claims` })
    .catch(async () => assert.fail(`claims / min ${await claimsPerMinute()} after ${landed} claims`));
  assert.equal(await page.locator('[data-series="default"] svg polygon').count(), 4, 'warm, claimed, starting and waiting are drawn');
  assert.match((await page.textContent('#table')) ?? '', /default\s*nbpool\/tiny:latest/);
  assert.equal(await page.textContent('#error'), '');
  await page.screenshot({ path: `${artifacts}status-orchestrator.png`, fullPage: true });

  const denied = await browser.newPage();
  await denied.goto(`${node.orch.adminUrl}/`);
  await shows(denied, '#error', /403/);
});

test('the redirector status page shows its nodes, their state and visitors sent', async () => {
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  await page.goto(`${redirector.adminUrl}/#token=${TOKEN}`);
  await arrive(2);
  await shows(page, '#tiles', /nodes up\s*1 \/ 1/);
  assert.match((await page.textContent('#table')) ?? '', /up/);
  assert.ok(Number(/sent \/ min\s*(\d+)/.exec((await page.textContent('#tiles')) ?? '')?.[1]) >= 1);
  await page.waitForSelector('svg polygon', { timeout: 10_000 });
  await page.screenshot({ path: `${artifacts}status-redirector.png`, fullPage: true });
});
