/**
 * What counts as a person's activity on a WebSocket, read cheaply off the visitor's byte stream.
 *
 * Only the client -> server direction is looked at (what the browser sends), and only frame
 * headers: payloads are skipped by their length, never read or unmasked. A chunk counts when it
 * carries any part of a frame other than a ping or a pong, so a browser answering the server's
 * keep-alive pings (Jupyter's, every 30 s) does not keep a container alive (issue 16 part 3).
 */

const OPCODE_PING = 0x9;
const OPCODE_PONG = 0xa;

/** Follows the frames of one client -> server stream across chunks. */
export class ClientFrameScanner {
  /** Bytes of the current frame's payload still to come in later chunks. */
  private skip = 0;
  /** Whether the frame those bytes belong to counts as activity. */
  private currentCounts = false;
  /** The start of a frame header a chunk boundary cut (a few bytes, rare). */
  private partial: Buffer | undefined;

  /** True when `chunk` carries any part of a frame that counts as activity (not a ping or pong). */
  scan(chunk: Buffer): boolean {
    let data = chunk;
    if (this.partial !== undefined) {
      data = Buffer.concat([this.partial, chunk]);
      this.partial = undefined;
    }
    const length = data.length;
    let counts = false;
    let pos = 0;
    if (this.skip > 0) {
      if (this.skip >= length) {
        this.skip -= length;
        return this.currentCounts;
      }
      pos = this.skip;
      this.skip = 0;
      counts = this.currentCounts;
    }
    while (pos < length) {
      if (length - pos < 2) {
        this.partial = Buffer.from(data.subarray(pos));
        break;
      }
      const second = data[pos + 1]!;
      let payload = second & 0x7f;
      let header = payload === 126 ? 4 : payload === 127 ? 10 : 2;
      if (second & 0x80) header += 4; // masking key
      if (length - pos < header) {
        this.partial = Buffer.from(data.subarray(pos));
        break;
      }
      if (payload === 126) payload = data.readUInt16BE(pos + 2);
      else if (payload === 127) payload = data.readUInt32BE(pos + 2) * 2 ** 32 + data.readUInt32BE(pos + 6);
      const opcode = data[pos]! & 0x0f;
      this.currentCounts = opcode !== OPCODE_PING && opcode !== OPCODE_PONG;
      if (this.currentCounts) counts = true;
      pos += header + payload;
    }
    if (pos > length) this.skip = pos - length;
    return counts;
  }
}
