/**
 * The original programs nbpool replaces, as peers in the same run: tmpnb (jupyter/tmpnb,
 * Python/tornado + docker-py) behind configurable-http-proxy for bench:claim, and
 * jupyter/tmpnb-redirector for bench:redirect. Their code is never part of this repository:
 * BENCH_TMPNB_DIR and BENCH_TMPNB_REDIRECTOR_DIR name checkouts, run on Debian's python3-tornado,
 * python3-docker, python3-pycurl and python3-tz through lib/run-original.py. Unset, a bench says so
 * and compares against what it measures in the same run.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { removeNamed, TINY_IMAGE } from './docker-bench.js';
import { httpRequest } from './http.js';
import { proxyToken, repoRoot, startChpLike } from './peers.js';
import { freePort, startProc, waitListening, type Proc } from './procs.js';
import { startWatched, type Stack } from './stack.js';

/** Python with Debian's packages (a pyenv or venv python3 first on PATH would not see them). */
export const python = process.env.BENCH_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
export const runOriginal = join(repoRoot, 'bench', 'lib', 'run-original.py');

/** Checks that a Python program's imports load; throws one line naming what is missing. */
export function checkPythonModules(modules: string[], packages: string): void {
  try {
    execFileSync(python, ['-c', `import ${modules.join(', ')}`], { stdio: 'pipe', timeout: 30_000 });
  } catch (err) {
    throw new Error(`${python} cannot import ${modules.join(', ')} (apt-get install ${packages}): ${String((err as { stderr?: Buffer }).stderr ?? err).trim().split('\n').pop()}`);
  }
}

/** The checkout to run, or why tmpnb is not measured. */
export function tmpnbCheckout(): { dir: string } | { skip: string } {
  const dir = process.env.BENCH_TMPNB_DIR;
  if (!dir) return { skip: 'BENCH_TMPNB_DIR is not set (a checkout of jupyter/tmpnb; see bench/README.md)' };
  if (!existsSync(join(dir, 'orchestrate.py'))) throw new Error(`BENCH_TMPNB_DIR=${dir} holds no orchestrate.py`);
  checkPythonModules(['tornado', 'docker', 'pycurl', 'pytz'], 'python3-tornado python3-docker python3-pycurl python3-tz');
  return { dir };
}

/**
 * tmpnb with a pool of `poolSize` tiny containers named tmp.<poolName>.<user>, behind CHP 5.3.
 * tmpnb fills its pool before it listens, and replaces a claimed container only when it culls it
 * (culling is set to once an hour here, as nbpool's is off). Note: at start it removes every
 * container named tmp.*.*, whatever the pool: run one at a time.
 */
export async function startTmpnb(dir: string, poolName: string, poolSize: number): Promise<Stack> {
  const port = await freePort();
  const adminPort = await freePort();
  const prefix = `tmp.${poolName}.`;
  return startWatched(
    (name) => name.startsWith(prefix),
    async () => {
      const chp = await startChpLike('chp', 'CHP 5.3', `http://127.0.0.1:${port}`);
      const tmpnb = startProc('tmpnb', python, [
        runOriginal, join(dir, 'orchestrate.py'),
        '--ip=127.0.0.1', `--port=${port}`, '--admin_ip=127.0.0.1', `--admin_port=${adminPort}`,
        `--image=${TINY_IMAGE}`, `--pool_size=${poolSize}`, `--pool_name=${poolName}`,
        '--command=tiny-notebook --port {port} --ip=0.0.0.0 --base-url {base_path}',
        '--cull_period=3600', '--cull_timeout=3600', '--logging=warning',
      ], { CONFIGPROXY_AUTH_TOKEN: proxyToken, CONFIGPROXY_ENDPOINT: chp.apiUrl });
      try {
        await waitListening(tmpnb, port, 600_000);
      } catch (err) {
        await tmpnb.stop();
        await chp.stop();
        throw err;
      }
      return {
        kind: 'tmpnb + CHP 5.3',
        procs: [chp, tmpnb],
        url: chp.url,
        statsUrl: `http://127.0.0.1:${port}/api/stats`,
        async stop() {
          await tmpnb.stop();
          await chp.stop();
        },
      };
    },
    () => removeNamed(prefix),
    { name: 'tmpnb', poolSize, refills: false },
  );
}

/** The checkout of jupyter/tmpnb-redirector to run, or why it is not measured. */
export function tmpnbRedirectorCheckout(): { dir: string } | { skip: string } {
  const dir = process.env.BENCH_TMPNB_REDIRECTOR_DIR;
  if (!dir) return { skip: 'BENCH_TMPNB_REDIRECTOR_DIR is not set (a checkout of jupyter/tmpnb-redirector; see bench/README.md)' };
  if (!existsSync(join(dir, 'redirector.py'))) throw new Error(`BENCH_TMPNB_REDIRECTOR_DIR=${dir} holds no redirector.py`);
  checkPythonModules(['tornado'], 'python3-tornado');
  return { dir };
}

/**
 * The original tmpnb-redirector on loopback, polling `nodes`' /stats every `statsPeriod` s; it
 * keeps its host list in ./hosts.txt, so it runs in `workDir`. Returns its public URL.
 */
export async function startTmpnbRedirector(dir: string, workDir: string, nodes: string[], statsPeriod: number): Promise<Proc & { url: string }> {
  const port = await freePort();
  const apiPort = await freePort();
  const proc = startProc('tmpnb-redirector', python, [runOriginal, join(dir, 'redirector.py'), `--port=${port}`, '--api_ip=127.0.0.1', `--api_port=${apiPort}`, `--stats_period=${statsPeriod}`, '--logging=warning'], {}, workDir);
  try {
    await waitListening(proc, port);
    await waitListening(proc, apiPort);
    for (const host of nodes) {
      const res = await httpRequest(`http://127.0.0.1:${apiPort}/hosts`, { method: 'POST', body: JSON.stringify({ host }) });
      if (res.status !== 200) throw new Error(`tmpnb-redirector: POST /hosts ${host} answered ${res.status}`);
    }
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return { ...proc, url: `http://127.0.0.1:${port}` };
}
