/** `nbpool proxy`: placeholder until its issue lands. */
export async function run(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write('Usage: nbpool proxy [options]\n\nnot yet implemented\n');
    return;
  }
  process.stderr.write('nbpool proxy: not yet implemented\n');
  process.exitCode = 1;
}
