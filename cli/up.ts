/** `nbpool up`: placeholder until the proxy and orchestrator land. */
export async function run(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write('Usage: nbpool up [options]\n\nnot yet implemented\n');
    return;
  }
  process.stderr.write('nbpool up: not yet implemented\n');
  process.exitCode = 1;
}
