/** The visitor-facing HTML: loading page, waiting page, full page. Small, no external assets. */
import { escapeHtml } from '../shared/html.js';

function page(title: string, body: string, head = ''): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>${head}
<style>body{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#222}
.spin{display:inline-block;width:1em;height:1em;border:.15em solid #ccc;border-top-color:#555;border-radius:50%;animation:s 1s linear infinite;vertical-align:middle}
@keyframes s{to{transform:rotate(1turn)}}</style></head>
<body>${body}</body></html>
`;
}

/**
 * Shown for `/` and unrouted paths: continues at once to `spawnUrl` (a same-site path). `noun` is
 * what the pool hands out: "notebook", or "app" for pools that are not notebooks.
 */
export function loadingPage(spawnUrl: string, noun = 'notebook'): string {
  const url = escapeHtml(spawnUrl);
  return page(
    `Starting your ${noun}`,
    `<h1><span class="spin"></span> Starting your ${escapeHtml(noun)}&hellip;</h1><p>If nothing happens, <a href="${url}">continue</a>.</p>
<script>location.replace(${JSON.stringify(spawnUrl).replace(/</g, '\\u003c')});</script>`,
    `<meta http-equiv="refresh" content="0;url=${url}">`,
  );
}

/**
 * Shown while the visitor waits in line: polls `/api/wait/<ticket>` (long poll) and moves on the
 * moment a container is theirs; without JavaScript it reloads `retryUrl` every few seconds.
 */
export function waitingPage(ticket: string, retryUrl: string, position: number, noun = 'notebook'): string {
  const script = `
const status = document.getElementById('status');
async function poll() {
  for (;;) {
    let res;
    try { res = await fetch(${JSON.stringify(`/api/wait/${ticket}`)}, { cache: 'no-store' }); }
    catch { await new Promise((r) => setTimeout(r, 1000)); continue; }
    const body = await res.json().catch(() => ({}));
    // Through the ticket URL, not straight to body.url: its redirect sets the visitor's cookie.
    if (body.ready) { location.replace(${JSON.stringify(retryUrl)}); return; }
    if (res.status !== 200) { status.textContent = body.message || 'No container became free in time. Please try again in a little while.'; return; }
    status.textContent = body.position > 0 ? 'You are number ' + (body.position + 1) + ' in line.' : 'You are next.';
  }
}
poll();`.replace(/</g, '\\u003c');
  return page(
    `Waiting for a ${noun}`,
    `<h1><span class="spin"></span> All ${escapeHtml(noun)}s are busy</h1>
<p id="status">You are number ${position + 1} in line. This page moves on by itself the moment one is free.</p>
<noscript><meta http-equiv="refresh" content="5;url=${escapeHtml(retryUrl)}"></noscript>
<script>${script}</script>`,
  );
}

/** Beyond the waiting line, or while the node shuts down. */
export function fullPage(message: string, retryAfterSeconds: number, noun = 'notebook'): string {
  return page(
    `No ${noun} free`,
    `<h1>No ${escapeHtml(noun)} is free right now</h1><p>${escapeHtml(message)}</p><p>Please try again in ${retryAfterSeconds} seconds.</p>`,
  );
}

/** A visitor over their address's share (fair-share.ts): it is about them, not about the node being full. */
export function overSharePage(message: string, retryAfterSeconds: number, noun = 'notebook'): string {
  return page(
    `Too many ${noun}s from here`,
    `<h1>Too many ${escapeHtml(noun)}s from your address</h1><p>${escapeHtml(message)}</p><p>Please try again in ${retryAfterSeconds} seconds.</p>`,
  );
}

/** A visitor's link names what this node does not have (a mistyped pool): say so in a page, not JSON. */
export function notFoundPage(message: string): string {
  return page('Not found', `<h1>This link leads nowhere</h1><p>${escapeHtml(message)}</p><p>The page that sent you here may hold a mistyped link.</p>`);
}

/** A visitor whose container stopped (killed, out of memory) comes back: say so, and offer a fresh one. */
export function stoppedPage(reason: string, spawnUrl: string, noun = 'notebook'): string {
  const why = reason === 'out of memory' ? `it ran out of memory (the limit per ${escapeHtml(noun)})` : escapeHtml(reason);
  return page(
    `Your ${noun} stopped`,
    `<h1>Your ${escapeHtml(noun)} stopped</h1><p>It is no longer running: ${why}. What was in it is gone.</p>
<p><a href="${escapeHtml(spawnUrl)}">Start a fresh ${escapeHtml(noun)}</a></p>`,
  );
}

/** Long enough for a redirector's next poll of this node (its default period is 2 s). */
const ELSEWHERE_DELAY_S = 2;

/**
 * This node cannot start one now (its container engine is gone): a moment later the visitor goes
 * back to `entryUrl`, the public link, whose redirector by then sends them to another node.
 */
export function elsewherePage(entryUrl: string, noun = 'notebook'): string {
  const url = escapeHtml(entryUrl);
  return page(
    `Finding you a ${noun}`,
    `<h1><span class="spin"></span> Finding you a ${escapeHtml(noun)} on another server&hellip;</h1><p>This server cannot start one right now. If nothing happens, <a href="${url}">continue</a>.</p>`,
    `<meta http-equiv="refresh" content="${ELSEWHERE_DELAY_S};url=${url}">`,
  );
}
