/**
 * The directory each program keeps its state in between runs: the tokens it generated, the
 * orchestrator's claim journal, the redirector's node list. By default `.nbpool` under the working
 * directory, so programs started from one directory (`nbpool proxy`, then `nbpool orchestrator`)
 * find each other's tokens; `--state-dir` (NBPOOL_STATE_DIR) moves it, e.g. to /var/lib/nbpool
 * under a service manager whose working directory is not the operator's.
 */
import { checks, type StringSpec } from './config.js';

export const stateDirOption = {
  type: 'string',
  default: '.nbpool',
  env: 'NBPOOL_STATE_DIR',
  help: 'directory of the state kept between runs (generated tokens, the claim journal, the redirector\'s node list); relative to the working directory',
  metavar: 'DIR',
  check: checks.names('a directory'),
} as const satisfies StringSpec;
