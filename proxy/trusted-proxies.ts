/** --trusted-proxy: the fronts whose X-Forwarded-Proto the proxy believes, as a BlockList of IPs and CIDRs. */
import { BlockList, isIP } from 'node:net';
import { ConfigError } from '../shared/errors.js';

/** `10.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8` -> one BlockList; undefined when none is given. */
export function trustedProxies(entries: readonly string[]): BlockList | undefined {
  if (entries.length === 0) return undefined;
  const list = new BlockList();
  for (const entry of entries) {
    const slash = entry.indexOf('/');
    const address = slash === -1 ? entry : entry.slice(0, slash);
    const version = isIP(address);
    const bits = slash === -1 ? undefined : Number(entry.slice(slash + 1));
    const max = version === 4 ? 32 : 128;
    if (version === 0 || (bits !== undefined && !(Number.isInteger(bits) && bits >= 0 && bits <= max && entry.slice(slash + 1) !== ''))) {
      throw new ConfigError(`--trusted-proxy ${JSON.stringify(entry)} must be an IP address or a CIDR such as 10.0.0.0/8`);
    }
    const family = version === 4 ? 'ipv4' : 'ipv6';
    if (bits === undefined) list.addAddress(address, family);
    else list.addSubnet(address, bits, family);
  }
  return list;
}

/** A loopback address: one only this machine can reach (unset, for a listen address, means every interface). */
export function isLoopback(ip: string | undefined): boolean {
  if (ip === undefined || ip === '') return false;
  return ip === 'localhost' || ip === '::1' || ip.startsWith('127.');
}
