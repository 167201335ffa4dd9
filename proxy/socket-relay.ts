/**
 * The byte relay between two connected sockets once an upgrade (a WebSocket) is through.
 *
 * Fast path: each socket reads into a buffer of its own that is reused read after read (node:net's
 * `onread` mode), and the read callback writes straight to the other socket: no Readable stream,
 * no 'data' event, no allocation per read. That takes a fifth to a third off the proxy's
 * user-space instructions per echoed message (bench/README.md, "The proxy's CPU per WebSocket
 * message"). node:net offers `onread` only to sockets it creates, and these come from node:http,
 * so it is switched on through net's own fields, found by name and checked first; where they are
 * missing (another Node version) or the socket is not plain TCP (TLS), the relay falls back to a
 * 'data' listener, same semantics.
 */
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** Bytes per read on the fast path; a read that fills it is followed by another at once. */
const READ_BUFFER_BYTES = 16 * 1024;

/** node:net's private keys for `onread` mode (lib/net.js: kBuffer, kBufferCb, kBufferGen). */
interface OnreadKeys {
  buffer: symbol;
  callback: symbol;
  generator: symbol;
}

/** Looked up once, on the first socket: null when this Node has no such fields. */
let onreadKeys: OnreadKeys | null | undefined;

function onreadKeysOf(socket: Socket): OnreadKeys | null {
  if (onreadKeys === undefined) {
    const symbols = Object.getOwnPropertySymbols(socket);
    const find = (name: string) => symbols.find((s) => s.description === name);
    const buffer = find('kBuffer');
    const callback = find('kBufferCb');
    const generator = find('kBufferGen');
    onreadKeys = buffer && callback && generator ? { buffer, callback, generator } : null;
  }
  return onreadKeys;
}

interface StreamHandle {
  useUserBuffer?: (buffer: Uint8Array) => void;
}

/** The socket's `onread` fields when it can be switched to reading into a buffer of ours, else undefined. */
function switchable(stream: Duplex): OnreadKeys | undefined {
  if (!(stream instanceof Socket) || (stream as Socket & { encrypted?: boolean }).encrypted) return undefined;
  const handle = (stream as Socket & { _handle?: StreamHandle | null })._handle;
  if (typeof handle?.useUserBuffer !== 'function' || stream.destroyed) return undefined;
  const keys = onreadKeysOf(stream);
  if (keys === null) return undefined;
  const fields = stream as unknown as Record<symbol, unknown>;
  // Already in onread mode, or net changed what these fields mean: leave the socket alone.
  if (fields[keys.buffer] !== null || fields[keys.callback] !== null || fields[keys.generator] !== null) return undefined;
  return keys;
}

/**
 * Copies `from` into `to` with back-pressure (reading stops while `to` is full), `seen` looking at
 * each chunk first; `from`'s end ends `to`. Returns whether the fast path was taken.
 */
export function relay(from: Duplex, to: Duplex, seen?: (chunk: Buffer) => void): boolean {
  to.on('drain', () => from.resume());
  from.on('end', () => to.end());
  const keys = switchable(from);
  if (keys === undefined) {
    from.on('data', (chunk: Buffer) => {
      seen?.(chunk);
      if (!to.write(chunk)) from.pause();
    });
    return false;
  }
  // Bytes that arrived before the switch (e.g. what followed the handshake) go first.
  const early = from.read() as Buffer | null;
  if (early !== null) {
    seen?.(early);
    to.write(early);
  }
  let buffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
  /** A write still holds (part of) `buffer`: the next read needs a fresh one. */
  let held = false;
  const fields = from as unknown as Record<symbol, unknown>;
  fields[keys.buffer] = buffer;
  fields[keys.generator] = () => {
    if (held) {
      held = false;
      buffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    }
    return buffer;
  };
  fields[keys.callback] = (nread: number, buf: Buffer): boolean => {
    const chunk = nread === buf.length ? buf : buf.subarray(0, nread);
    seen?.(chunk);
    const more = to.write(chunk);
    if (to.writableLength > 0) held = true;
    return more;
  };
  (from as Socket & { _handle: Required<StreamHandle> })._handle.useUserBuffer(buffer);
  from.resume();
  return true;
}
