/**
 * What the orchestrator needs from a container engine: docker-backend.ts implements it with
 * dockerode. The interface speaks of containers, labels and targets, not of Docker: a backend
 * that runs each container as something else (a Swarm service, a Pod) maps these onto its own.
 */

/** Labels every container carries; Docker labels are the truth on restart. */
export const LABELS = {
  instance: 'nbpool.instance',
  pool: 'nbpool.pool',
  user: 'nbpool.user',
  route: 'nbpool.route',
  created: 'nbpool.created',
  token: 'nbpool.token',
  generation: 'nbpool.generation',
} as const;

/** On an instance's owner marker (see acquireInstance): the instance it owns. Never on a pool container. */
export const OWNER_LABEL = 'nbpool.owner-of';

export interface ContainerSpec {
  /** Container name on the engine (unique). */
  name: string;
  image: string;
  /** Command as an argument vector, placeholders already filled in; empty = the image's own. */
  cmd: string[];
  env: string[];
  labels: Record<string, string>;
  /** Port the program listens on inside the container. */
  port: number;
  /** Host address to publish the port on (ephemeral host port) when no network is given. */
  publishIp: string;
  /** Docker network to attach to; the target is then the container's address on it. */
  network?: string;
  user?: string;
  memoryBytes?: number;
  cpuQuota?: number;
  cpuShares?: number;
  pidsLimit?: number;
  /** host:container[:ro] bind mounts. */
  binds: string[];
  /** Linux capabilities given back; every other one is dropped. */
  capAdd: string[];
  /** Root filesystem read-only (the tmpfs mounts stay writable). */
  readOnlyRoot: boolean;
  /** Paths mounted as tmpfs (memory, counted against the container's limit). */
  tmpfs: string[];
  /**
   * False: the container answers whoever routes to it (the proxy) and reaches nothing else,
   * neither other machines nor other containers. Cannot be combined with `network`.
   */
  egress: boolean;
}

export interface StartedContainer {
  /** Engine id. */
  containerId: string;
  /** http://host:port the proxy routes to. */
  target: string;
}

export interface FoundContainer {
  containerId: string;
  name: string;
  labels: Record<string, string>;
  running: boolean;
  /** http://host:port, when running and reachable. */
  target?: string;
  /** Marked claimed on the engine (markClaimed): a restart must never hand it out again. */
  claimed: boolean;
  /**
   * Its machine takes no new work and is being emptied (Swarm: node paused): a warm one is
   * replaced elsewhere, a claimed one keeps its visitor.
   */
  leaving?: boolean;
}

export interface ExecResult {
  exitCode: number;
  output: string;
}

/** What the engine tells about our containers while the orchestrator watches. */
export interface EngineWatcher {
  /** A container stopped or went away; `reason` as the engine tells it ("out of memory", "exited with code 137"). */
  exited(containerId: string, reason: string): void;
  /** The connection to the engine broke: nothing it said before can be trusted any more. */
  lost(err: Error): void;
  /** The connection is back after `lost`. */
  restored(): void;
}

export interface BackendCapabilities {
  /** Whether `exec` (and so --claim-hook) is available. */
  exec: boolean;
}

export interface ContainerBackend {
  /** Short name for logs and errors ('docker', 'swarm'). */
  readonly kind: string;
  readonly capabilities: BackendCapabilities;
  /** Creates and starts a container; throws when the engine refuses (bad image, bad command...). */
  start(spec: ContainerSpec, signal?: AbortSignal): Promise<StartedContainer>;
  /** All containers (running or not) carrying label `key=value`. */
  list(label: string, value: string): Promise<FoundContainer[]>;
  /** Whether the container still runs (false when it exited or is gone). */
  isRunning(containerId: string): Promise<boolean>;
  /** Removes it by force; removing a gone container is not an error. */
  remove(containerId: string, signal?: AbortSignal): Promise<void>;
  /** Marks it claimed durably on the engine, so `list` reports `claimed: true` after a restart. */
  markClaimed(containerId: string): Promise<void>;
  /**
   * Follows the engine's events for containers labelled `label=value`, reconnecting by itself with
   * backoff, until the returned function is called. Optional: without it only the periodic
   * reconcile notices what changed on the engine.
   */
  watch?(label: string, value: string, watcher: EngineWatcher): () => void;
  /**
   * Makes this process the only orchestrator of `instance` on the engine, atomically (two racing
   * for it: one wins). An owner that is provably gone (instance-owner.ts: ownerMayLive) is taken
   * over; a live one makes it throw InstanceTaken. Resolves to the release (idempotent), called at
   * shutdown; a SIGKILLed owner leaves its marker for the next one to take over.
   */
  acquireInstance(instance: string): Promise<() => Promise<void>>;
  /** Runs a command inside it and waits for it, up to `timeoutMs` (when capabilities.exec). */
  exec?(containerId: string, cmd: string[], env: string[], timeoutMs: number): Promise<ExecResult>;
}
