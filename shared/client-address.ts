/**
 * Who a request comes from, for per-client limits: the socket's address, or the address a trusted
 * proxy in front of us names in X-Forwarded-For. Only proxies named by --trusted-proxy are believed,
 * so a client cannot pick its own address. IPv6 clients are counted by their /64.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { ConfigError } from './errors.js';

/** Parses `--trusted-proxy` entries (addresses or CIDR ranges) into a BlockList. */
export function trustedProxies(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address, bits, extra] = entry.trim().split('/');
    const type = isIPv4(address ?? '') ? 'ipv4' : isIPv6(address ?? '') ? 'ipv6' : undefined;
    const prefix = bits === undefined ? (type === 'ipv4' ? 32 : 128) : Number(bits);
    if (!type || extra !== undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > (type === 'ipv4' ? 32 : 128)) {
      throw new ConfigError(`--trusted-proxy: ${JSON.stringify(entry)} is not an IP address or CIDR range (e.g. 10.0.0.0/8, ::1)`);
    }
    list.addSubnet(address!, prefix, type);
  }
  return list;
}

function normalise(address: string): string {
  return address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address;
}

/**
 * Answers of `list.check` by address, per list: a check builds a SocketAddress each time, a
 * noticeable part of a claim's CPU, while the addresses asking are few. Bounded: hostile
 * X-Forwarded-For values from a trusted front only ever empty it.
 */
const checked = new WeakMap<BlockList, Map<string, boolean>>();
const CHECKED_MAX = 4096;

function trusted(list: BlockList, address: string): boolean {
  let answers = checked.get(list);
  if (!answers) checked.set(list, (answers = new Map()));
  let answer = answers.get(address);
  if (answer === undefined) {
    const type = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
    answer = type !== undefined && list.check(address, type);
    if (answers.size >= CHECKED_MAX) answers.clear();
    answers.set(address, answer);
  }
  return answer;
}

/**
 * The client's address: walking X-Forwarded-For from the right while each hop is a trusted proxy.
 * Garbage in the header stops the walk at the last address we can vouch for.
 */
export function clientAddress(remote: string | undefined, forwardedFor: string | string[] | undefined, list: BlockList): string {
  let address = normalise(remote ?? '');
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : (forwardedFor ?? '')).split(',').map((h) => normalise(h.trim()));
  while (trusted(list, address) && hops.length > 0) {
    const next = hops.pop()!;
    if (!isIPv4(next) && !isIPv6(next)) break;
    address = next;
  }
  return address;
}

/** The key limits count by: the address itself, or an IPv6 address's /64. */
export function clientKey(address: string): string {
  if (!address.includes(':') || !isIPv6(address)) return address; // the first test spares IPv4 the IPv6 pattern
  const [head = '', tail = ''] = address.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  return groups.slice(0, 4).map((g) => parseInt(g || '0', 16).toString(16)).join(':') + '::/64';
}
