import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ClientFrameScanner } from '../../proxy/ws-frames.js';

/** A masked client frame as a browser sends it. */
function frame(opcode: number, payloadBytes: number): Buffer {
  const len = payloadBytes < 126 ? [payloadBytes] : payloadBytes < 65536 ? [126, payloadBytes >> 8, payloadBytes & 0xff] : [127, 0, 0, 0, 0, (payloadBytes >>> 24) & 0xff, (payloadBytes >> 16) & 0xff, (payloadBytes >> 8) & 0xff, payloadBytes & 0xff];
  // Payload bytes chosen to look like ping headers, so a scanner that reads payloads would be fooled.
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | len[0]!, ...len.slice(1), 1, 2, 3, 4]), Buffer.alloc(payloadBytes, 0x89)]);
}

const TEXT = 0x1;
const BINARY = 0x2;
const PING = 0x9;
const PONG = 0xa;

describe('ClientFrameScanner', () => {
  test('data frames count, pings and pongs do not', () => {
    const scanner = new ClientFrameScanner();
    assert.equal(scanner.scan(frame(TEXT, 5)), true);
    assert.equal(scanner.scan(frame(PONG, 0)), false);
    assert.equal(scanner.scan(frame(PING, 4)), false);
    assert.equal(scanner.scan(frame(BINARY, 300)), true);
    assert.equal(scanner.scan(Buffer.concat([frame(PONG, 2), frame(PONG, 2)])), false);
    assert.equal(scanner.scan(Buffer.concat([frame(PONG, 2), frame(TEXT, 2)])), true, 'a chunk with any data frame counts');
  });

  test('frames cut at every byte boundary are followed exactly', () => {
    for (const [opcode, size, counts] of [[TEXT, 20, true], [PONG, 20, false], [BINARY, 300, true], [PING, 125, false]] as const) {
      const bytes = Buffer.concat([frame(opcode, size), frame(PONG, 1)]);
      for (let cut = 1; cut < bytes.length; cut++) {
        const scanner = new ClientFrameScanner();
        const first = scanner.scan(bytes.subarray(0, cut));
        const second = scanner.scan(bytes.subarray(cut));
        const headerOfFirstDone = cut >= (size < 126 ? 6 : 8);
        assert.equal(first, counts && headerOfFirstDone, `opcode ${opcode}, cut at ${cut}: first part`);
        const firstEnds = (size < 126 ? 6 : 8) + size;
        assert.equal(second, counts && cut < firstEnds, `opcode ${opcode}, cut at ${cut}: second part`);
        // Still in step: the next frame is read as a frame, not as payload.
        assert.equal(scanner.scan(frame(PONG, 3)), false);
        assert.equal(scanner.scan(frame(TEXT, 3)), true);
      }
    }
  });

  test('a 1 MiB frame over many chunks counts throughout and keeps the scanner in step', () => {
    const scanner = new ClientFrameScanner();
    const bytes = frame(BINARY, 1024 * 1024);
    for (let pos = 0; pos < bytes.length; pos += 65536) assert.equal(scanner.scan(bytes.subarray(pos, pos + 65536)), true);
    assert.equal(scanner.scan(frame(PONG, 0)), false);
    assert.equal(scanner.scan(frame(TEXT, 1)), true);
  });
});
