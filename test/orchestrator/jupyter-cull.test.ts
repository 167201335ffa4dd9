/**
 * Culling counts what a person does (issue 16 part 3), with the real Jupyter Notebook 6.4 image in
 * Chromium behind one `nbpool up` (--cull-timeout 20 s, --cull-period 1 s), three visitors at once:
 * - a forgotten tab (tree page and a notebook with its kernel, both open, nobody there) is culled
 *   though the tree page keeps polling and the server keeps pinging the kernel WebSocket;
 * - a cell running `time.sleep` past the timeout with the tab closed is kept until it finishes,
 *   then culled as idle;
 * - a visitor typing keeps theirs past the timeout.
 * (--cull-max culling a busy kernel, and saying so, is in demand-rules.test.ts.)
 * The app's clock runs 20 times fast in the browser (its timers of 10 s and more): the tree's 60-s
 * poll comes every 3 s and the notebook's 120-s autosave every 6 s, both inside the 20-s timeout.
 * The server pings every kernel WebSocket every 2 s (tornado's ws_ping_interval; 30 s by default).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { DEFAULT_COMMAND } from '../../orchestrator/presets.js';
import { JUPYTER_IMAGE, removeInstance, requireImage } from '../helpers/docker.js';
import { freePort, waitFor } from '../helpers/net.js';
import { startUp, type UpProcess } from '../helpers/up.js';

/** Long enough for a loaded CI machine's gaps between a page's requests while a kernel starts. */
const CULL_TIMEOUT_S = 20;
const SLEEP_S = 28;
const artifacts = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const instance = `jupyter-cull-${randomBytes(4).toString('hex')}`;
let up: UpProcess | undefined;
let browser: Browser | undefined;

interface LogLine {
  time: string;
  msg: string;
  id?: string;
  reason?: string;
  kernel?: string;
}

function logLines(): LogLine[] {
  return up!.stdout().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as LogLine);
}

/** The cull of container `id`, once it is logged. */
function waitForCull(id: string, timeoutMs: number): Promise<LogLine & { at: number }> {
  return waitFor(() => {
    const line = logLines().find((l) => l.id === id && l.msg.startsWith('culling container'));
    return line && { ...line, at: Date.parse(line.time) };
  }, { timeoutMs, intervalMs: 250, what: `container ${id} culled` });
}

function culled(id: string): boolean {
  return logLines().some((l) => l.id === id && l.msg.startsWith('culling container'));
}

before(async () => {
  await requireImage(JUPYTER_IMAGE);
  up = await startUp([
    '--image', JUPYTER_IMAGE, '--command', `${DEFAULT_COMMAND} "--NotebookApp.tornado_settings={'ws_ping_interval':2000}"`,
    '--port', String(await freePort()), '--admin-port', '0', '--api-port', '0', '--instance', instance, '--log-level', 'info',
    // Three warm, and no room for more: no container starts (Chromium drops requests on each) while pages load.
    '--pool-size', '3', '--max-containers', '3', '--mem-limit', '256m', '--max-per-client', '0', '--claims-per-minute', '0',
    '--cull-timeout', String(CULL_TIMEOUT_S), '--cull-period', '1',
  ]);
  await waitFor(async () => ((await (await fetch(`${up!.url}/api/stats`)).json()) as { available: number }).available === 3 || undefined, {
    timeoutMs: 60_000, intervalMs: 250, what: 'three warm Jupyter containers',
  });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
}, { timeout: 90_000 });

after(async () => {
  await browser?.close();
  await up?.stop();
  // For a failure: what the node logged.
  mkdirSync(artifacts, { recursive: true });
  writeFileSync(`${artifacts}jupyter-cull.log`, up?.stdout() ?? '');
  await removeInstance(instance);
}, { timeout: 60_000 });

/** In the page, before the app's scripts: its timers of 10 s and more run 20 times as often. */
const FAST_APP_CLOCK = `{
  const setInterval = window.setInterval;
  window.setInterval = (handler, ms, ...args) => setInterval(handler, ms >= 10000 ? ms / 20 : ms, ...args);
}`;

interface Visitor {
  context: BrowserContext;
  tree: Page;
  /** The container's id and its base URL (`.../user/<id>/`). */
  id: string;
  base: string;
}

/**
 * Chromium aborts requests in flight whenever an interface gains or loses an address, which Docker
 * does with every container started or removed on this engine, by any test: a page whose scripts
 * were cut off never renders. A visitor would reload; so does the test, a bounded number of times.
 */
async function retrying(what: string, attempt: () => Promise<void>, attempts = 5): Promise<void> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (i >= attempts) throw err;
      process.stderr.write(`reloading ${what} after: ${(err as Error).message.split('\n')[0]}\n`);
    }
  }
}

/** A visitor opens the link and lands on their container's tree page. */
async function arrive(): Promise<Visitor> {
  const context = await browser!.newContext();
  await context.addInitScript(FAST_APP_CLOCK);
  const tree = await context.newPage();
  // Again, the affinity cookie brings the visitor back to the same container.
  await retrying('landing', async () => {
    await tree.goto(`${up!.url}/`);
    await tree.waitForURL(/\/user\/[A-Za-z0-9]+\/tree/, { timeout: 30_000 });
  });
  const [, base, id] = /^(.*\/user\/([A-Za-z0-9]+)\/)tree/.exec(tree.url())!;
  return { context, tree, id: id!, base: base! };
}

/** A new notebook, opened in a page of its own, its kernel connected and idle. */
async function openNotebook(v: Visitor): Promise<Page> {
  // As the tree page's New button does: Jupyter's XSRF check wants its cookie echoed in a header.
  const xsrf = (await v.context.cookies()).find((c) => c.name === '_xsrf')?.value ?? '';
  const res = await v.context.request.post(`${v.base}api/contents`, { data: { type: 'notebook' }, headers: { 'X-XSRFToken': xsrf } });
  const created = { status: res.status(), body: await res.text() };
  assert.equal(created.status, 201, `new notebook: ${created.body.slice(0, 300)} (${v.tree.url()})`);
  const { path } = JSON.parse(created.body) as { path: string };
  const page = await v.context.newPage();
  // The page must render well within the cull timeout, or the container is rightly idle.
  await retrying('the notebook page', async () => {
    await page.goto(`${v.base}notebooks/${path}`, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('#kernel_indicator_icon', { timeout: 15_000 });
  });
  try {
    await page.waitForSelector('#kernel_indicator_icon.kernel_idle_icon', { timeout: 30_000 });
  } catch (err) {
    await page.screenshot({ path: `${artifacts}jupyter-cull-${v.id}.png` });
    throw new Error(`${(err as Error).message}; indicator: ${await page.getAttribute('#kernel_indicator_icon', 'class')}; ${await page.locator('#notification_area').textContent()}`);
  }
  return page;
}

/** Types `code` into the last cell and runs it (Shift+Enter). */
async function runCell(page: Page, code: string): Promise<void> {
  await page.locator('.code_cell .CodeMirror').last().click();
  await page.keyboard.type(code);
  await page.keyboard.press('Shift+Enter');
}

test('culling counts what a person does, not what an open Jupyter tab does by itself', { timeout: 180_000, concurrency: true }, async (t) => {
  await Promise.all([
    t.test('a forgotten tab, with only polls, heartbeats and pings, is culled after the timeout', async () => {
      const forgotten = await arrive();
      await openNotebook(forgotten);
      // The visitor looked at the tree page last: Jupyter's tree polls only while its window has focus.
      await forgotten.tree.bringToFront();
      await forgotten.tree.evaluate("window.dispatchEvent(new Event('focus'))");
      const idleSince = Date.now();
      let polls = 0;
      forgotten.context.on('request', (r) => {
        if (/\/api\/sessions\?/.test(r.url())) polls++;
      });
      const cull = await waitForCull(forgotten.id, 60_000);
      assert.equal(cull.reason, 'idle');
      assert.ok(cull.at - idleSince >= (CULL_TIMEOUT_S - 2) * 1000, `culled ${cull.at - idleSince} ms after the tab went quiet`);
      assert.ok(polls >= 2, `the tree page kept polling meanwhile (${polls} session polls)`);
    }),

    t.test('a cell sleeping past the timeout with the tab closed is kept until it finishes, then culled', async () => {
      const computing = await arrive();
      const page = await openNotebook(computing);
      await runCell(page, `import time; time.sleep(${SLEEP_S})`);
      await page.waitForSelector('#kernel_indicator_icon.kernel_busy_icon');
      const busySince = Date.now();
      await computing.context.close();
      const cull = await waitForCull(computing.id, (SLEEP_S + CULL_TIMEOUT_S + 15) * 1000);
      assert.equal(cull.reason, 'idle');
      assert.notEqual(cull.kernel, 'busy', 'culled after the kernel finished');
      assert.ok(cull.at - busySince >= SLEEP_S * 1000, `culled ${cull.at - busySince} ms after the cell started, before it finished`);
      assert.ok(
        logLines().some((l) => l.id === computing.id && l.msg.startsWith('not culling: no visitor activity, but its kernel is working')),
        'kept while it computed, and the log says why',
      );
    }),

    t.test('a visitor typing keeps theirs past the timeout', async () => {
      const typing = await arrive();
      const page = await openNotebook(typing);
      await runCell(page, '6 * 7');
      await page.waitForSelector('.output_area:has-text("42")');
      // Typing alone sends nothing until the notebook's autosave; one and a half timeouts of it.
      await page.locator('.code_cell .CodeMirror').last().click();
      const until = Date.now() + 1.5 * CULL_TIMEOUT_S * 1000;
      while (Date.now() < until) {
        await page.keyboard.type('x');
        await page.waitForTimeout(1000);
      }
      assert.ok(!culled(typing.id), 'not culled while the visitor typed');
      assert.equal((await typing.context.request.get(`${typing.base}api/status`)).status(), 200, 'still served');
    }),
  ]);
});
