/**
 * WebSocket echo load: `connections` clients, each with one message in flight, for a fixed time.
 * Every echo is compared byte for byte with what was sent; at the end the clients wait for the
 * messages still in flight so that a lost message is counted as lost, not as cut off by the timer.
 */
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';

export interface WsLoadResult {
  connections: number;
  messageBytes: number;
  seconds: number;
  sent: number;
  received: number;
  lost: number;
  altered: number;
  /** Connections that failed to open or closed with an error. */
  failures: number;
  messagesPerSec: number;
}

export async function runWsLoad(url: string, { connections, messageBytes, seconds, maxMessages = Infinity }: { connections: number; messageBytes: number; seconds: number; maxMessages?: number }): Promise<WsLoadResult> {
  const template = randomBytes(messageBytes);
  let sent = 0;
  let received = 0;
  let altered = 0;
  let failures = 0;
  let running = true;

  const sockets = await Promise.all(
    Array.from({ length: connections }, () =>
      new Promise<WebSocket | undefined>((resolve) => {
        const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024, handshakeTimeout: 10_000 });
        ws.once('open', () => resolve(ws));
        ws.once('error', () => {
          failures++;
          resolve(undefined);
        });
      }),
    ),
  );
  const open = sockets.filter((s): s is WebSocket => s !== undefined);

  const started = process.hrtime.bigint();
  const finished = open.map(
    (ws, c) =>
      new Promise<void>((resolve) => {
        let expected: Buffer | undefined;
        const sendNext = () => {
          if (!running || sent >= maxMessages) {
            expected = undefined;
            resolve();
            return;
          }
          // a fresh message each time: the connection and sequence number are written into it
          const msg = Buffer.from(template);
          msg.writeUInt32BE(c, 0);
          msg.writeUInt32BE(sent, 4);
          expected = msg;
          sent++;
          ws.send(msg, { binary: true });
        };
        ws.on('message', (data: Buffer) => {
          received++;
          if (!expected || !expected.equals(data)) altered++;
          sendNext();
        });
        ws.on('close', () => {
          if (expected) failures++;
          resolve();
        });
        ws.on('error', () => undefined);
        sendNext();
      }),
  );
  const timer = setTimeout(() => {
    running = false;
  }, seconds * 1000);
  // bounded: messages in flight get 10 s more to come back, then count as lost
  await Promise.race([Promise.all(finished), new Promise((r) => setTimeout(r, seconds * 1000 + 10_000))]);
  clearTimeout(timer);
  running = false;
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  for (const ws of open) ws.terminate();
  return {
    connections,
    messageBytes,
    seconds: elapsed,
    sent,
    received,
    lost: sent - received,
    altered,
    failures,
    messagesPerSec: received / elapsed,
  };
}
