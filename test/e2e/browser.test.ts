// A visitor in a real browser (Debian's Chromium through playwright-core) opens a publisher's page
// on another site; the page embeds the stable link (redirector) in an iframe. Behind the link: a
// node (`nbpool up`: proxy + orchestrator) keeping warm containers of the REAL Jupyter Notebook 6.4
// image with its default command, XSRF check on. The node serves HTTPS (a certificate made here,
// which Chromium and the redirector are told to trust), so the proxy makes Jupyter's `_xsrf` cookie
// one that survives in the cross-site iframe; the redirector serves plain HTTP and sends visitors on
// to the node's https URL.
// Screenshots go to test-artifacts/.
import assert from 'node:assert/strict';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Frame, type Page } from 'playwright-core';
import { JUPYTER_IMAGE, removeInstance, requireImage } from '../helpers/docker.js';
import { freePort, waitFor } from '../helpers/net.js';
import { selfSignedCert } from '../proxy/helpers.js';
import { startProgram, type Program } from './program.js';

const artifacts = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const instance = `browser-test-${randomBytes(4).toString('hex')}`;
const proxyToken = randomBytes(16).toString('hex');
/** The publisher is on 127.0.0.2: another site than the node (127.0.0.1), as on the web. */
const PUBLISHER_HOST = '127.0.0.2';
const programs: Program[] = [];
let publisher: Server | undefined;
let browser: Browser | undefined;
let publisherUrl = '';
/** The node's public address (https). */
let nodeUrl = '';
let failed = false;
/** Failed and slow browser requests, printed when a test fails. */
const browserLog: string[] = [];

async function newVisitor(): Promise<BrowserContext> {
  const context = await browser!.newContext({ viewport: { width: 1280, height: 800 } });
  const started = new Map<unknown, number>();
  context.on('request', (r) => started.set(r, Date.now()));
  context.on('requestfailed', (r) => browserLog.push(`failed ${r.url()}: ${r.failure()?.errorText}`));
  context.on('requestfinished', (r) => {
    const ms = Date.now() - (started.get(r) ?? Date.now());
    if (ms > 3000) browserLog.push(`slow ${ms} ms ${r.url()}`);
  });
  context.on('response', (r) => {
    if (r.status() >= 400) browserLog.push(`${r.status()} ${r.url()}`);
  });
  return context;
}

function e2eTest(name: string, body: () => Promise<void>): void {
  test(name, { timeout: 110_000 }, async () => {
    try {
      await body();
    } catch (err) {
      failed = true;
      await screenshotAll(name).catch(() => undefined);
      throw err;
    }
  });
}

/** What every open page showed when a test failed, for the CI artifacts. */
async function screenshotAll(testName: string): Promise<void> {
  const slug = testName.replace(/[^a-z0-9]+/gi, '-').slice(0, 40);
  const pages = browser?.contexts().flatMap((c) => c.pages()) ?? [];
  await Promise.all(pages.map((p, i) => p.screenshot({ path: `${artifacts}browser-failed-${slug}-${i}.png` })));
}

before(async () => {
  await requireImage(JUPYTER_IMAGE);
  mkdirSync(artifacts, { recursive: true });
  const [proxyPort, apiPort, adminPort, redirectorPort, redirectorAdminPort] = await Promise.all(
    Array.from({ length: 5 }, () => freePort()),
  );

  const link = `http://127.0.0.1:${redirectorPort}/`;
  nodeUrl = `https://127.0.0.1:${proxyPort}`;
  const tls = selfSignedCert();
  publisher = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html><head><title>A publisher's page</title></head><body>
<h1>Try it live</h1><p>Below: your own notebook server, one click away.</p>
<iframe id="notebook" src="${link}" width="1200" height="700"></iframe></body></html>`);
  });
  await new Promise<void>((resolve) => publisher!.listen(0, PUBLISHER_HOST, resolve));
  const { port: publisherPort } = publisher.address() as { port: number };
  publisherUrl = `http://${PUBLISHER_HOST}:${publisherPort}`;

  const env = { CONFIGPROXY_AUTH_TOKEN: proxyToken, ADMIN_AUTH_TOKEN: randomBytes(16).toString('hex'), NBPOOL_LOG_LEVEL: 'warn' };
  programs.push(
    startProgram([
      'up', '--ip', '127.0.0.1', '--port', String(proxyPort), '--api-port', String(apiPort), '--admin-port', String(adminPort),
      '--frame-ancestors', publisherUrl, '--image', JUPYTER_IMAGE, '--pool-size', '3',
      '--instance', instance, '--ssl-key', tls.key, '--ssl-cert', tls.cert,
    ], env),
    startProgram([
      'redirector', '--ip', '127.0.0.1', '--port', String(redirectorPort), '--admin-ip', '127.0.0.1',
      '--admin-port', String(redirectorAdminPort), '--node', nodeUrl, '--stats-period', '0.5',
      '--state-store', 'memory:', '--frame-ancestors', publisherUrl,
    ], { ...env, NODE_EXTRA_CA_CERTS: tls.cert }),
  );

  // Two warm Jupyter containers (one per visitor below), then the link pointing at the node.
  await waitFor(async () => {
    const res = await fetch(`${link}api/stats`);
    const stats = res.ok ? ((await res.json()) as { available?: number }) : undefined;
    return (stats?.available ?? 0) >= 2 || undefined;
  }, { timeoutMs: 60_000, intervalMs: 250, what: 'two warm Jupyter containers behind the proxy, seen by the redirector over HTTPS' });
  await waitFor(async () => {
    const res = await fetch(link, { redirect: 'manual' });
    return (res.status === 302 && res.headers.get('location')?.startsWith(`${nodeUrl}/`)) || undefined;
  }, { timeoutMs: 15_000, intervalMs: 200, what: 'the redirector sending visitors to the node' });

  // Chromium trusts the node's certificate by its public key, as if a CA had signed it.
  const spki = new X509Certificate(readFileSync(tls.cert)).publicKey.export({ type: 'spki', format: 'der' });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      `--ignore-certificate-errors-spki-list=${createHash('sha256').update(spki).digest('base64')}`,
    ],
  });
}, { timeout: 120_000 });

after(async () => {
  await browser?.close();
  publisher?.close();
  await Promise.all(programs.map((p) => p.stop()));
  if (failed || process.env.NBPOOL_TEST_LOGS) {
    for (const p of programs) process.stderr.write(p.output().slice(-8000) + '\n');
    process.stderr.write(`browser:\n${browserLog.slice(-60).join('\n')}\n`);
  }
  await removeInstance(instance);
}, { timeout: 60_000 });

/**
 * Chromium aborts requests in flight with ERR_NETWORK_CHANGED whenever an interface gains or loses
 * an address, which Docker does with every container it starts or removes (the host side of the
 * veth gets an IPv6 link-local address): a pool refill while the page loads is enough. A visitor
 * would reload; so does the test, a bounded number of times, and it logs each retry.
 */
async function retrying<T>(what: string, attempt: () => Promise<T>, recover: () => Promise<unknown>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (i >= attempts) throw err;
      browserLog.push(`retry ${i} of ${what}: ${(err as Error).message.split('\n')[0]}`);
      await recover().catch(() => undefined);
    }
  }
}

const TREE = /\/user\/[^/]+\/tree/;

/** The iframe once it shows a Jupyter tree: the frame and the visitor's /user/<id> path. */
async function notebookFrame(page: Page): Promise<{ frame: Frame; userPath: string }> {
  return retrying('the Jupyter tree in the iframe', async () => {
    const frame = await waitFor(() => page.frames().find((f) => TREE.test(f.url())), {
      timeoutMs: 30_000,
      intervalMs: 100,
      what: 'the iframe to land on a Jupyter tree',
    });
    await frame.locator('#notebook_list').waitFor({ timeout: 20_000 });
    const userPath = new URL(frame.url()).pathname.match(/^\/user\/[^/]+/)![0];
    return { frame, userPath };
  }, async () => {
    // Landed but not drawn: reload the frame (same container). Not landed: reload the page.
    const frame = page.frames().find((f) => TREE.test(f.url()));
    await (frame ? frame.goto(frame.url()) : page.reload());
  });
}

/** Types `code` into the first cell of the notebook shown in `view`, runs it, returns its output. */
async function runCell(page: Page, view: Frame, code: string): Promise<string> {
  return retrying('running a cell', async () => {
    const cell = view.locator('#notebook_panel .CodeMirror').first();
    await cell.waitFor({ timeout: 20_000 });
    await view.locator('#kernel_indicator_icon.kernel_idle_icon').waitFor({ timeout: 30_000 });
    await cell.click();
    await page.keyboard.press('Control+A');
    await page.keyboard.type(code);
    await page.keyboard.press('Shift+Enter');
    const output = view.locator('.output_area .output_text pre').first();
    await output.waitFor({ timeout: 20_000 });
    return (await output.innerText()).trim();
  }, () => view.goto(view.url()));
}

e2eTest('a visitor lands on their own Jupyter in the iframe over HTTPS with XSRF on, runs a cell, saves, reloads and finds it again; a second visitor gets another container', async () => {
  const first = await newVisitor();
  const page = await first.newPage();
  await page.goto(publisherUrl);
  const { frame, userPath } = await notebookFrame(page);
  assert.match(userPath, /^\/user\/[A-Za-z0-9_-]{21,}$/);
  assert.notEqual(new URL(frame.url()).hostname, new URL(page.url()).hostname, 'embedded from another site');
  await page.screenshot({ path: `${artifacts}browser-1-tree-in-iframe.png` });

  // New -> Python 3: Jupyter creates Untitled.ipynb and opens it in a new tab, as for any visitor.
  await frame.locator('#new-buttons').click();
  const opened = first.waitForEvent('page', { timeout: 20_000 });
  await frame.locator('#kernel-python3 a').click();
  const notebook = await opened;
  await waitFor(() => /\/notebooks\/Untitled[^/]*\.ipynb/.test(notebook.url()) || undefined, {
    timeoutMs: 20_000,
    what: 'the new notebook to open',
  });
  assert.ok(notebook.url().includes(`${userPath}/notebooks/`), `the notebook is in the visitor's container: ${notebook.url()}`);
  const printed = await runCell(notebook, notebook.mainFrame(), 'print(6*7)');
  assert.equal(printed, '42', 'the kernel answered over its WebSocket through the proxy');
  await notebook.screenshot({ path: `${artifacts}browser-2-notebook-42.png` });

  // The same notebook inside the iframe (a cross-site frame): the kernel runs there too, and the
  // notebook is saved from there (a PUT that Jupyter's XSRF check lets through only with the
  // `_xsrf` cookie, which the frame has only because the proxy made it cross-site).
  const notebookUrl = notebook.url();
  await notebook.close();
  await frame.goto(notebookUrl);
  // Other output than the first run's, which autosave may have stored in the notebook.
  assert.equal(await runCell(page, frame, "print(6*7, 'in the frame')"), '42 in the frame', 'the kernel answers inside the cross-site iframe');
  await page.screenshot({ path: `${artifacts}browser-3-notebook-in-iframe.png` });
  await frame.evaluate('Jupyter.notebook.save_notebook()');
  // The notebook's own tab has an _xsrf of its own (first-party); the frame's is kept under the publisher's site.
  const cookies = await first.cookies(nodeUrl);
  const xsrf = cookies.find((c) => c.name === '_xsrf' && c.partitionKey?.includes(PUBLISHER_HOST));
  assert.ok(xsrf, `the iframe keeps Jupyter's _xsrf cookie: ${JSON.stringify(cookies)}`);
  assert.deepEqual([xsrf.sameSite, xsrf.secure], ['None', true], 'made cross-site by the proxy (Jupyter sets no SameSite)');
  // Jupyter checks: a POST from the frame without the token is refused, with it accepted.
  // (A script in the page's text: tsx would wrap a function's inner helpers in its own __name.)
  const posts = await frame.evaluate(`(async () => {
    const token = decodeURIComponent(/(?:^|;\\s*)_xsrf=([^;]*)/.exec(document.cookie)?.[1] ?? '');
    const post = (headers) => fetch('${userPath}/api/contents', { method: 'POST', headers, body: '{"type": "directory"}' }).then((r) => r.status);
    return { without: await post({}), with: await post({ 'X-XSRFToken': token }) };
  })()`);
  assert.deepEqual(posts, { without: 403, with: 201 }, 'XSRF is checked, and passes with the cookie');

  // Reloading the publisher's page brings the visitor back to their container and their notebook,
  // saved with its output. Chromium requests the iframe's `src` (the link) again, so keeping the
  // visitor needs the link to recognise them: affinity cookies (shared/cookies.ts), partitioned
  // (CHIPS) because only those survive in a cross-site iframe.
  await page.reload();
  const again = await notebookFrame(page);
  assert.equal(again.userPath, userPath, 'same container after reloading the page');
  await again.frame.locator('#notebook_list').getByText('Untitled.ipynb').first().waitFor({ timeout: 10_000 });
  await again.frame.goto(notebookUrl);
  await again.frame.locator('.output_area .output_text pre', { hasText: '42 in the frame' }).first().waitFor({ timeout: 20_000 });

  // Another visitor (another browser context: no shared state) gets a container of their own.
  const second = await newVisitor();
  const other = await second.newPage();
  await other.goto(publisherUrl);
  const otherFrame = await notebookFrame(other);
  assert.notEqual(otherFrame.userPath, userPath, 'a second visitor gets a different container');
  assert.equal(await otherFrame.frame.locator('#notebook_list').getByText('Untitled.ipynb').count(), 0, "and does not see the first visitor's notebook");
  await other.screenshot({ path: `${artifacts}browser-4-second-visitor.png` });
  await first.close();
  await second.close();
});
