/**
 * One typed configuration loader for every program: defaults < config file < environment < flags.
 *
 * Each program declares its options once (type, default, env var, help); this module parses the
 * command line, reads the environment and an optional JSON config file, validates everything at
 * start and returns a typed object. Any mistake becomes a ConfigError with one clear line, so a
 * typo never starts a half-configured server.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { ConfigError } from './errors.js';
import { requireRegularFile } from './files.js';

export type OptionType = 'string' | 'int' | 'number' | 'boolean' | 'list' | 'url';

interface BaseSpec {
  /** One line of help text. */
  help: string;
  /** Environment variable read when the flag is absent. */
  env?: string;
  /** Name shown for the value in --help, e.g. PORT. */
  metavar?: string;
  /** Extra check on the parsed value; returns an error message or undefined. */
  check?: (value: never) => string | undefined;
}
export interface StringSpec extends BaseSpec {
  type: 'string';
  default?: string;
  choices?: readonly string[];
  /** A JSON number in the config file is taken as its text (for values such as `N|auto`). */
  acceptNumbers?: boolean;
}
export interface UrlSpec extends BaseSpec { type: 'url'; default?: string; protocols?: readonly string[] }
export interface IntSpec extends BaseSpec { type: 'int'; default?: number; min?: number; max?: number }
export interface NumberSpec extends BaseSpec { type: 'number'; default?: number; min?: number; max?: number }
export interface BooleanSpec extends BaseSpec { type: 'boolean'; default?: boolean }
export interface ListSpec extends BaseSpec {
  type: 'list';
  default?: readonly string[];
  /** Split each value on commas (default); false for values that may hold commas, such as headers. */
  splitCommas?: boolean;
}
export type OptionSpec = StringSpec | UrlSpec | IntSpec | NumberSpec | BooleanSpec | ListSpec;
export type OptionSpecs = Record<string, OptionSpec>;

type ValueOf<S extends OptionSpec> = S extends BooleanSpec
  ? boolean
  : S extends ListSpec
    ? string[]
    : S extends IntSpec | NumberSpec
      ? S extends { default: number } ? number : number | undefined
      : S extends { default: string } ? string : string | undefined;

/** The parsed configuration: one typed field per declared option, plus `config` (the file read, if any). */
export type ConfigValues<S extends OptionSpecs> = { -readonly [K in keyof S]: ValueOf<S[K]> };

export interface ParseResult<S extends OptionSpecs> {
  values: ConfigValues<S>;
  /** Positional arguments left after the flags. */
  positionals: string[];
  help: boolean;
  /** The parsed config file (whole), for programs that read structured sections from it. */
  file: Record<string, unknown>;
}

/** `apiPort` -> `--api-port`; the flag is the one spelling users see. */
export function flagName(key: string): string {
  return '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

function keyFromFlag(flag: string): string {
  return flag.replace(/^--/, '').replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function convert(key: string, spec: OptionSpec, raw: unknown, source: string): unknown {
  const where = `${flagName(key)} (from ${source})`;
  const text = typeof raw === 'string' ? raw.trim() : raw;
  switch (spec.type) {
    case 'boolean': {
      if (typeof text === 'boolean') return text;
      if (typeof text === 'string' && /^(1|true|yes|on)$/i.test(text)) return true;
      if (typeof text === 'string' && /^(0|false|no|off)$/i.test(text)) return false;
      throw new ConfigError(`${where} must be true or false, got ${JSON.stringify(raw)}`);
    }
    case 'int':
    case 'number': {
      const n = typeof text === 'number' ? text : typeof text === 'string' && text !== '' ? Number(text) : NaN;
      if (!Number.isFinite(n) || (spec.type === 'int' && !Number.isInteger(n))) {
        throw new ConfigError(`${where} must be ${spec.type === 'int' ? 'an integer' : 'a number'}, got ${JSON.stringify(raw)}`);
      }
      if (spec.min !== undefined && n < spec.min) throw new ConfigError(`${where} must be at least ${spec.min}, got ${n}`);
      if (spec.max !== undefined && n > spec.max) throw new ConfigError(`${where} must be at most ${spec.max}, got ${n}`);
      return n;
    }
    case 'list': {
      if (Array.isArray(text) && text.every((v) => typeof v === 'string')) return [...text];
      if (typeof text === 'string') {
        if (text === '') return [];
        return spec.splitCommas === false ? [text] : text.split(',').map((s) => s.trim()).filter(Boolean);
      }
      throw new ConfigError(`${where} must be a list of strings, got ${JSON.stringify(raw)}`);
    }
    case 'url': {
      if (typeof text !== 'string' || text === '') throw new ConfigError(`${where} must be a URL, got ${JSON.stringify(raw)}`);
      let url: URL;
      try {
        url = new URL(text);
      } catch {
        throw new ConfigError(`${where} is not a valid URL: ${JSON.stringify(raw)}`);
      }
      const protocols = spec.protocols ?? ['http:', 'https:'];
      if (!protocols.includes(url.protocol)) {
        throw new ConfigError(`${where} must use ${protocols.join(' or ')}, got ${JSON.stringify(raw)}`);
      }
      return text;
    }
    case 'string': {
      if (spec.acceptNumbers && typeof text === 'number' && Number.isFinite(text)) return String(text);
      if (typeof text !== 'string') throw new ConfigError(`${where} must be a string, got ${JSON.stringify(raw)}`);
      if (spec.choices && !spec.choices.includes(text)) {
        throw new ConfigError(`${where} must be one of ${spec.choices.join(', ')}, got ${JSON.stringify(raw)}`);
      }
      // Trimmed, as it was checked: a token read from a file with its newline must still match.
      return text;
    }
  }
}

/** Why a file an option names cannot be used, in words ("no such file or directory"). */
function fileProblem(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const words: Record<string, string> = {
    ENOENT: 'no such file or directory',
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    EISDIR: 'is a directory',
    ENOTDIR: 'a part of the path is not a directory',
    EROFS: 'read-only file system',
  };
  // A recursive mkdir meets a file where a directory of the path should be; an exclusive create, the file itself.
  if (e.code === 'EEXIST') return e.syscall === 'mkdir' ? words.ENOTDIR! : 'already exists';
  return (e.code && words[e.code]) ?? e.message;
}

/**
 * Runs `work` on a file that option `option` names (reads it, writes it, opens it): a failure is a
 * ConfigError naming the option, the path and why, so a wrong path stops the program with one line
 * at start instead of a stack trace.
 */
export function withOptionFile<T>(option: string, path: string, work: (path: string) => T): T {
  try {
    return work(path);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`${option} ${path}: ${fileProblem(err)}`);
  }
}

function readConfigFile(path: string): Record<string, unknown> {
  const text = withOptionFile('--config', path, (file) => {
    requireRegularFile(file);
    return readFileSync(file, 'utf8');
  });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path} must hold a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

/** The spec of option `key`, if the program has one: own keys only (`--to-string` is not an option). */
function specOf(specs: OptionSpecs, key: string): OptionSpec | undefined {
  return Object.hasOwn(specs, key) ? specs[key] : undefined;
}

/**
 * Parses argv (without node and script), env and, when `--config FILE` is given, a JSON file whose
 * keys are option names in camelCase or kebab-case. Keys of the file that are not options are left
 * for the program in `file` (for example a `pools` section).
 */
export function parseConfig<S extends OptionSpecs>(
  specs: S,
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  structuredFileKeys: readonly string[] = [],
): ParseResult<S> {
  const fromFlags = new Map<string, unknown>();
  const positionals: string[] = [];
  let configPath: string | undefined;
  let help = false;

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '-h' || arg === '--help') {
      help = true;
      continue;
    }
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const inline = eq === -1 ? undefined : arg.slice(eq + 1);
    if (flag === '--config') {
      configPath = inline ?? argv[++i];
      if (configPath === undefined) throw new ConfigError('--config needs a file path');
      continue;
    }
    const key = keyFromFlag(flag);
    const spec = specOf(specs, key);
    if (!spec) throw new ConfigError(`unknown option ${flag} (see --help)`);
    let raw: string | true;
    if (spec.type === 'boolean') {
      raw = inline ?? true;
    } else {
      const next = inline ?? argv[++i];
      if (next === undefined) throw new ConfigError(`${flag} needs a value`);
      // `--container-user --read-only` is a forgotten value, not a user named --read-only.
      if (inline === undefined && next.startsWith('--')) throw new ConfigError(`${flag} needs a value, got the option ${next} (write ${flag}=VALUE for a value that starts with --)`);
      raw = next;
    }
    const value = convert(key, spec, raw, 'command line');
    if (spec.type === 'list') {
      const previous = (fromFlags.get(key) as string[] | undefined) ?? [];
      fromFlags.set(key, [...previous, ...(value as string[])]);
    } else {
      fromFlags.set(key, value);
    }
  }

  const file = configPath ? readConfigFile(configPath) : {};
  const fromFile = new Map<string, unknown>();
  for (const [rawKey, value] of Object.entries(file)) {
    const key = keyFromFlag('--' + rawKey);
    if (structuredFileKeys.includes(rawKey)) continue;
    const spec = specOf(specs, key);
    if (!spec) throw new ConfigError(`config file ${configPath}: unknown option ${JSON.stringify(rawKey)}`);
    fromFile.set(key, convert(key, spec, value, `config file ${configPath}`));
  }

  const values: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(specs)) {
    let value: unknown = spec.default;
    if (fromFile.has(key)) value = fromFile.get(key);
    const envValue = spec.env ? env[spec.env] : undefined;
    if (spec.env && envValue !== undefined && envValue !== '') value = convert(key, spec, envValue, `$${spec.env}`);
    if (fromFlags.has(key)) value = fromFlags.get(key);
    if (spec.type === 'list' && value === undefined) value = [];
    if (spec.type === 'boolean' && value === undefined) value = false;
    if (value !== undefined && spec.check) {
      const problem = spec.check(value as never);
      if (problem) throw new ConfigError(`${flagName(key)}: ${problem}`);
    }
    values[key] = value;
  }
  return { values: values as ConfigValues<S>, positionals, help, file };
}

/** Renders --help for a program from its option specs. */
export function renderHelp(usage: string, summary: string, specs: OptionSpecs): string {
  const rows = Object.entries(specs).map(([key, spec]) => {
    const metavar = spec.type === 'boolean' ? '' : ` ${spec.metavar ?? spec.type.toUpperCase()}`;
    const left = `  ${flagName(key)}${metavar}`;
    const extras: string[] = [];
    if (spec.default !== undefined && spec.default !== false && !(Array.isArray(spec.default) && spec.default.length === 0)) {
      extras.push(`default ${Array.isArray(spec.default) ? spec.default.join(',') : String(spec.default)}`);
    }
    if (spec.env) extras.push(`env ${spec.env}`);
    const right = spec.help + (extras.length ? ` [${extras.join('; ')}]` : '');
    return left.length < 30 ? left.padEnd(30) + right : `${left}\n${' '.repeat(30)}${right}`;
  });
  return `${usage}\n\n${summary}\n\nOptions:\n${rows.join('\n')}\n  --config FILE                 JSON file with any of these options (camelCase or kebab-case keys)\n  -h, --help                    show this help\n`;
}

/** A control character (tab aside): no HTTP header value may hold one (node refuses to send it). */
// eslint-disable-next-line no-control-regex -- control characters are what it looks for.
const CONTROL_CHARACTER = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/** Common checks used by several programs' option specs. */
export const checks = {
  port: (n: number) => (n >= 0 && n <= 65535 ? undefined : 'must be a port number 0-65535'),
  /** A value that must not be empty: '' would silently mean none (no store, no directory). */
  names: (what: string) => (v: string) => (v === '' ? `must name ${what}` : undefined),
  urlPath: (p: string) => (p.startsWith('/') ? undefined : 'must start with /'),
  /** An address to listen on: '' would mean every interface to node, unsaid. */
  address: (v: string) => (v === '' ? 'must name an address (leave the option out for its default)' : /\s/.test(v) ? 'must be one address' : undefined),
  /** An IP address literal (what the container engine takes for a published port). */
  ip: (v: string) => (isIP(v) ? undefined : 'must be an IP address, such as 127.0.0.1'),
  /** A value sent as an HTTP header: refused at start, not on every answer that carries it. */
  headerValue: (v: string) => (CONTROL_CHARACTER.test(v) ? 'must not hold control characters (it is sent as an HTTP header)' : undefined),
  /** CSP frame-ancestors sources: one directive, so no `;` (which would start another) nor `,`. */
  frameAncestors: (v: string) => (/[;,]/.test(v) || CONTROL_CHARACTER.test(v) ? 'takes a space-separated list of sources, without ; , or control characters' : undefined),
};
