/** Shared pieces of the proxy tests: an in-process or child-process proxy, and upstream servers. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { silentLogger } from '../../shared/log.js';
import { parseProxyArgs } from '../../proxy/config.js';
import { startProxy, type RunningProxy } from '../../proxy/server.js';

export const TOKEN = 'test-token';

/** An in-process proxy on loopback ephemeral ports with extra CLI flags. */
export async function startTestProxy(flags: string[] = [], env: NodeJS.ProcessEnv = { CONFIGPROXY_AUTH_TOKEN: TOKEN }): Promise<RunningProxy> {
  const { config } = parseProxyArgs(['--ip', '127.0.0.1', '--port', '0', '--api-ip', '127.0.0.1', '--api-port', '0', ...flags], env);
  return startProxy(config, silentLogger());
}

export interface Upstream {
  url: string;
  port: number;
  server: Server;
  /** Requests seen, most recent last. */
  seen: IncomingMessage[];
  close(): Promise<void>;
}

/**
 * An upstream answering JSON {url, headers, method, body} and echoing WebSocket messages, plus:
 * /slow/<ms> answers after <ms>, /die-mid-response sends half a body then resets, /hang never answers.
 */
export async function startUpstream(name = 'up', socketPath?: string): Promise<Upstream> {
  const seen: IncomingMessage[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen.push(req);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = req.url ?? '/';
      if (url.includes('/hang')) return;
      if (url.includes('/die-mid-response')) {
        res.writeHead(200, { 'Content-Length': '100000' });
        res.write('x'.repeat(1000), () => setTimeout(() => res.socket?.destroy(), 20));
        return;
      }
      const status = /\/status\/(\d{3})/.exec(url);
      if (status) {
        res.writeHead(Number(status[1]), { 'Content-Length': '0' }).end();
        return;
      }
      const slow = /\/slow\/(\d+)/.exec(url);
      const answer = () => {
        if (res.destroyed) return;
        const body = JSON.stringify({ name, url, method: req.method, headers: req.headers, body: Buffer.concat(chunks).toString() });
        res.writeHead(200, { 'Content-Type': 'application/json', 'X-Frame-Options': 'DENY', 'Content-Security-Policy': "default-src 'self'; frame-ancestors 'none'" });
        res.end(body);
      };
      if (slow) setTimeout(answer, Number(slow[1]));
      else answer();
    });
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => {
    ws.on('error', () => {});
    ws.send(`hello ${name} ${req.url}`);
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  if (socketPath !== undefined) await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  else await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = socketPath === undefined ? (server.address() as AddressInfo).port : 0;
  return {
    // A Unix socket as configurable-http-proxy names one: the path, percent-encoded, as the host.
    url: socketPath === undefined ? `http://127.0.0.1:${port}` : `http+unix://${encodeURIComponent(socketPath)}`,
    port,
    server,
    seen,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A loopback port with nothing listening (bound once, then released). */
export async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

export interface ChildProxy {
  child: ChildProcess;
  publicUrl: string;
  apiUrl: string;
  metricsUrl: string | undefined;
  /** Sends SIGTERM and waits for exit; returns the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * `nbpool proxy` as its own process (node --import tsx), ports learnt from its 'proxy listening'
 * log line (so the log level must stay at info or lower).
 */
export async function startChildProxy(flags: string[], env: NodeJS.ProcessEnv = {}): Promise<ChildProxy> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/nbpool.ts', 'proxy', '--ip', '127.0.0.1', '--port', '0', '--api-ip', '127.0.0.1', '--api-port', '0', ...flags], {
    env: { ...process.env, CONFIGPROXY_AUTH_TOKEN: TOKEN, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Never outlive the test process, even when a failed test skips its clean-up.
  const killChild = () => child.kill('SIGKILL');
  process.once('exit', killChild);
  child.once('exit', () => process.off('exit', killChild));
  let output = '';
  const ready = await new Promise<{ publicUrl: string; apiUrl: string; metricsUrl: string | undefined }>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child proxy did not start: ${output}`));
    }, 20_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      for (const line of output.split('\n')) {
        if (!line.includes('proxy listening')) continue;
        clearTimeout(timer);
        resolve(JSON.parse(line) as { publicUrl: string; apiUrl: string; metricsUrl: string | undefined });
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`child proxy exited with ${code}: ${output}`));
    });
  });
  child.stdout!.resume();
  return {
    child,
    ...ready,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null) return child.exitCode;
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill(signal);
      return exited;
    },
  };
}

/**
 * One raw HTTP/1.1 exchange over a fresh socket: whatever comes back until close or `timeoutMs`.
 * `halfClose` ends our side after writing, as a client that gives up mid-request does.
 */
export async function rawExchange(port: number, text: string | Buffer, timeoutMs = 5000, halfClose = false): Promise<{ response: string; closed: boolean }> {
  const { createConnection } = await import('node:net');
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    let response = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ response, closed: false });
    }, timeoutMs);
    socket.on('data', (d: Buffer) => {
      response += d.toString('latin1');
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ response, closed: true });
    });
    if (halfClose) socket.end(text);
    else socket.write(text);
  });
}

/** A throw-away self-signed certificate for localhost and 127.0.0.1 (openssl), as files. */
export function selfSignedCert(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'nbpool-tls-'));
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-days', '1'], { stdio: 'ignore' });
  return { key, cert };
}
