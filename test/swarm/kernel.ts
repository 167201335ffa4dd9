/** Runs code in a Jupyter kernel over its WebSocket channels, as the notebook page does. */
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';

interface KernelMessage {
  channel?: string;
  header: { msg_type: string };
  parent_header: { msg_id?: string };
  content: { name?: string; text?: string; ename?: string; evalue?: string; execution_state?: string };
}

/**
 * Jupyter's XSRF check is on (as in a visitor's browser): a page sets the `_xsrf` cookie, and a
 * POST carries it back in the cookie and the X-XSRFToken header.
 */
async function xsrfHeaders(base: string): Promise<Record<string, string>> {
  const page = await fetch(`${base}/tree`);
  await page.arrayBuffer();
  const xsrf = page.headers.getSetCookie().map((c) => /^_xsrf=([^;]*)/.exec(c)?.[1]).find(Boolean);
  if (!xsrf) throw new Error(`no _xsrf cookie from ${base}/tree (status ${page.status})`);
  return { Cookie: `_xsrf=${xsrf}`, 'X-XSRFToken': decodeURIComponent(xsrf) };
}

/** Starts a kernel under `base` (http://proxy/user/<id>), runs `code`, returns its stdout. */
export async function runInKernel(base: string, code: string, timeoutMs = 30_000): Promise<string> {
  const started = await fetch(`${base}/api/kernels`, { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json', ...(await xsrfHeaders(base)) } });
  if (started.status !== 201) throw new Error(`starting a kernel answered ${started.status}: ${await started.text()}`);
  const { id } = (await started.json()) as { id: string };
  const session = randomUUID();
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/api/kernels/${id}/channels?session_id=${session}`);
  try {
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const msgId = randomUUID();
    let out = '';
    // Done when the shell channel has the reply and iopub is idle again: the kernel sends output
    // on iopub and the reply on shell, two sockets with no order between them, so the reply can
    // come before the output (a clean-clone run read '' that way); iopub's idle follows all of it.
    let replied = false;
    let idle = false;
    const done = new Promise<string>((resolve, reject) => {
      ws.on('message', (data: Buffer) => {
        const msg = JSON.parse(data.toString()) as KernelMessage;
        if (msg.parent_header.msg_id !== msgId) return;
        if (msg.header.msg_type === 'stream' && msg.content.name === 'stdout') out += msg.content.text ?? '';
        if (msg.header.msg_type === 'error') reject(new Error(`${msg.content.ename}: ${msg.content.evalue}`));
        if (msg.channel === 'shell' && msg.header.msg_type === 'execute_reply') replied = true;
        if (msg.channel === 'iopub' && msg.header.msg_type === 'status' && msg.content.execution_state === 'idle') idle = true;
        if (replied && idle) resolve(out);
      });
      ws.once('close', () => reject(new Error('kernel channel closed')));
    });
    ws.send(
      JSON.stringify({
        header: { msg_id: msgId, msg_type: 'execute_request', session, username: '', version: '5.3', date: new Date().toISOString() },
        parent_header: {},
        metadata: {},
        content: { code, silent: false, store_history: false, user_expressions: {}, allow_stdin: false, stop_on_error: true },
        channel: 'shell',
        buffers: [],
      }),
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no execute_reply within ${timeoutMs} ms`)), timeoutMs)));
    try {
      return await Promise.race([done, timeout]);
    } finally {
      clearTimeout(timer);
    }
  } finally {
    ws.close();
  }
}
