/** nginx for benchmarks: one process (no master), a temp config, loopback only. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startProc, waitListening, type Proc } from './procs.js';

export interface Nginx extends Proc {
  port: number;
}

async function startNginx(name: string, httpBlock: (port: number) => string): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), 'nbpool-bench-nginx-'));
  const port = await freePort();
  const conf = `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
${httpBlock(port)}
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const proc = startProc(name, 'nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')]);
  const stop = proc.stop;
  const nginx: Nginx = {
    ...proc,
    port,
    async stop() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await waitListening(nginx, port);
  return nginx;
}

/** The upstream: answers every GET with a small fixed body, keep-alive. */
export function startNginxUpstream(): Promise<Nginx> {
  return startNginx('nginx-upstream', (port) => `
  server {
    listen 127.0.0.1:${port};
    location / { default_type text/plain; return 200 "hello from the upstream\\n"; }
  }`);
}

/** nginx as a reverse proxy to `target` (host:port) with upstream keep-alive and WebSocket upgrades. */
export function startNginxProxy(target: string): Promise<Nginx> {
  return startNginx('nginx-proxy', (port) => `
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  upstream backend { server ${target}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_buffering off;
      proxy_read_timeout 3600s;
    }
  }`);
}
