/** What a visitor sees, in a real browser: loading page, waiting in line, landing in their container. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { requireImage, TINY_IMAGE } from '../helpers/docker.js';
import { http, startNode, waitForWarm } from './harness.js';

test('a browser on an unrouted path goes through the loading page, waits in line when the node is full, and lands once room frees', async () => {
  await requireImage(TINY_IMAGE);
  const node = await startNode('browser', ['--pool-size', '1', '--max-containers', '1', '--cull-timeout', '2', '--cull-period', '0.3']);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  try {
    await waitForWarm(node, 'default', 1);
    const page = await browser.newPage();
    await page.goto(`${node.proxy.url}/notebooks/first.ipynb`);
    await page.waitForURL(/\/user\/[A-Za-z0-9]+\/notebooks\/first\.ipynb$/);
    assert.equal(await page.title(), 'tiny');

    // The node is full now (cap 1, claimed): the next visitor waits in line on the page.
    const second = await browser.newPage();
    await second.goto(`${node.proxy.url}/notebooks/second.ipynb`);
    await second.waitForSelector('text=in line');
    assert.match(await second.textContent('body') ?? '', /number 1 in line/);
    await page.close();
    // Once the first visitor's container is culled, the waiting page moves on by itself.
    await second.waitForURL(/\/user\/[A-Za-z0-9]+\/notebooks\/second\.ipynb$/, { timeout: 20_000 });
    assert.equal(await second.title(), 'tiny');
    const stale = await http(`${node.proxy.url}${new URL(page.url()).pathname}`);
    assert.equal(stale.status, 200);
    assert.match(stale.body, /Starting your notebook/, 'the culled visitor\'s old link leads to a new container');
  } finally {
    await browser.close();
    await node.stop();
  }
});
