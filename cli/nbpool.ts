/**
 * The nbpool command line: one binary, one subcommand per program. Programs are loaded on demand
 * so `nbpool --help` and each program start only what they use.
 */
import { ConfigError } from '../shared/errors.js';
import { VERSION } from '../shared/version.js';

interface Command {
  summary: string;
  load: () => Promise<{ run(argv: string[]): Promise<void> }>;
}

const commands: Record<string, Command> = {
  up: { summary: 'proxy + orchestrator for one Docker host, in one process', load: () => import('./up.js') },
  proxy: { summary: 'HTTP/WebSocket reverse proxy, configurable-http-proxy compatible', load: () => import('../proxy/main.js') },
  orchestrator: { summary: 'warm container pools on Docker, claimed through the proxy', load: () => import('../orchestrator/main.js') },
  redirector: { summary: 'one stable link that spreads visitors across nodes', load: () => import('../redirector/main.js') },
};

function usage(): string {
  const rows = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(14)}${c.summary}`);
  return `Usage: nbpool <command> [options]

Hands every visitor their own fresh, already-running notebook container.

Commands:
${rows.join('\n')}

Run 'nbpool <command> --help' for a command's options.
`;
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    const target = name === 'help' ? rest[0] : undefined;
    if (target && commands[target]) return (await commands[target].load()).run(['--help']);
    process.stdout.write(usage());
    return;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(VERSION + '\n');
    return;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`nbpool: unknown command ${JSON.stringify(name)}; commands: ${Object.keys(commands).join(', ')}\n`);
    process.exitCode = 2;
    return;
  }
  try {
    await (await command.load()).run(rest);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`nbpool ${name}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

await main(process.argv.slice(2));
