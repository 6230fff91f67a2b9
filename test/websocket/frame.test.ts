import { Buffer } from "node:buffer";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RemoteProtocolError } from "../../src/core/errors";
import { applyMask, applyMaskKey, decodeFrame, encodeFrame, frameHeaderSize, writeFrameHeader } from "../../src/protocols/websocket";
import { hex, toHex, utf8 } from "./helpers";

const frameArb = fc.record({
  fin: fc.boolean(),
  rsv1: fc.boolean(),
  rsv2: fc.boolean(),
  rsv3: fc.boolean(),
  opcode: fc.integer({ min: 0, max: 15 }),
  payload: fc.oneof(
    fc.uint8Array({ maxLength: 130 }),
    fc.uint8Array({ minLength: 65530, maxLength: 65540 }),
    fc.uint8Array({ maxLength: 1000 }),
  ),
  mask: fc.option(fc.uint8Array({ minLength: 4, maxLength: 4 }), { nil: null }),
});

/** Bytes, a start, a key offset, a key and a shift of the view: the inputs of a masking property. */
const maskCase = [
  fc.uint8Array({ maxLength: 600 }),
  fc.nat(8),
  fc.nat(3),
  fc.uint8Array({ minLength: 4, maxLength: 4 }),
  fc.nat(7),
] as const;

/** `bytes` as a view shifted inside a larger buffer (to vary the alignment), and the start clamped to it. */
function maskView(bytes: Uint8Array, startRaw: number, shift: number): { data: Uint8Array; start: number } {
  const backing = new Uint8Array(bytes.length + 8);
  backing.set(bytes, shift);
  return { data: backing.subarray(shift, shift + bytes.length), start: Math.min(startRaw, bytes.length) };
}

describe("applyMask", () => {
  it("masks RFC 6455 §5.7's 'Hello' with key 37 fa 21 3d", () => {
    const data = utf8("Hello");
    applyMask(data, 0, 5, hex("37fa213d"), 0);
    expect(toHex(data)).toBe("7f9f4d5158");
  });

  it("equals the byte-by-byte definition for any range, offset, alignment and key", () => {
    fc.assert(
      fc.property(
        ...maskCase,
        (bytes, startRaw, keyOffset, key, shift) => {
          const { data, start } = maskView(bytes, startRaw, shift);
          const expected = Uint8Array.from(bytes);
          for (let i = start; i < bytes.length; i++) expected[i] ^= key[(i - start + keyOffset) & 3]!;
          applyMask(data, start, bytes.length, key, keyOffset);
          return toHex(data) === toHex(expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("applyMaskKey with the key as a big-endian number equals applyMask", () => {
    fc.assert(
      fc.property(
        ...maskCase,
        (bytes, startRaw, keyOffset, key, shift) => {
          const { data, start } = maskView(bytes, startRaw, shift);
          const expected = Uint8Array.from(bytes);
          applyMask(expected, start, bytes.length, key, keyOffset);
          const word = Buffer.from(key).readInt32BE(0);
          applyMaskKey(data, start, bytes.length, word, keyOffset);
          return toHex(data) === toHex(expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("is its own inverse, also when applied in pieces", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.nat(), (bytes, key, cutRaw) => {
        const data = Uint8Array.from(bytes);
        applyMask(data, 0, data.length, key, 0);
        const cut = data.length === 0 ? 0 : cutRaw % data.length;
        applyMask(data, 0, cut, key, 0);
        applyMask(data, cut, data.length, key, cut & 3);
        return toHex(data) === toHex(bytes);
      }),
      { numRuns: 200 },
    );
  });
});

describe("frames", () => {
  it.each([
    ["a single-frame unmasked text message", { fin: true, opcode: 1, payload: utf8("Hello") }, "810548656c6c6f"],
    ["a single-frame masked text message", { fin: true, opcode: 1, payload: utf8("Hello"), mask: hex("37fa213d") }, "818537fa213d7f9f4d5158"],
    ["the first fragment of an unmasked text message", { fin: false, opcode: 1, payload: utf8("Hel") }, "010348656c"],
    ["the second fragment", { fin: true, opcode: 0, payload: utf8("lo") }, "80026c6f"],
    ["an unmasked ping", { fin: true, opcode: 9, payload: utf8("Hello") }, "890548656c6c6f"],
    ["a masked pong", { fin: true, opcode: 10, payload: utf8("Hello"), mask: hex("37fa213d") }, "8a8537fa213d7f9f4d5158"],
  ])("encodes RFC 6455 §5.7: %s", (_name, frame, expected) => {
    expect(toHex(encodeFrame(frame))).toBe(expected);
  });

  it("encodes lengths in the shortest form (RFC 6455 §5.7: 256 bytes, 64 KiB)", () => {
    expect(toHex(encodeFrame({ fin: true, opcode: 2, payload: new Uint8Array(256) }).subarray(0, 4))).toBe("827e0100");
    expect(toHex(encodeFrame({ fin: true, opcode: 2, payload: new Uint8Array(65536) }).subarray(0, 10))).toBe("827f0000000000010000");
    expect(frameHeaderSize(125, false)).toBe(2);
    expect(frameHeaderSize(126, false)).toBe(4);
    expect(frameHeaderSize(65535, true)).toBe(8);
    expect(frameHeaderSize(65536, true)).toBe(14);
    const head = new Uint8Array(14);
    expect(writeFrameHeader(head, 0, 0x82, 2 ** 40, null)).toBe(10);
    expect(toHex(head.subarray(0, 10))).toBe("827f0000010000000000");
  });

  it("round-trips any frame and mask", () => {
    fc.assert(
      fc.property(frameArb, (frame) => {
        const bytes = encodeFrame(frame);
        const r = decodeFrame(bytes);
        expect(r).not.toBeNull();
        expect(r!.length).toBe(bytes.length);
        expect(r!.frame.fin).toBe(frame.fin);
        expect(r!.frame.rsv1).toBe(frame.rsv1);
        expect(r!.frame.rsv2).toBe(frame.rsv2);
        expect(r!.frame.rsv3).toBe(frame.rsv3);
        expect(r!.frame.opcode).toBe(frame.opcode);
        expect(toHex(r!.frame.payload)).toBe(toHex(frame.payload));
        expect(r!.frame.mask === null ? null : toHex(r!.frame.mask)).toBe(frame.mask === null ? null : toHex(frame.mask));
        // Any proper prefix is incomplete.
        if (bytes.length > 0) expect(decodeFrame(bytes.subarray(0, bytes.length - 1))).toBeNull();
      }),
      { numRuns: 150 },
    );
  });

  it("decodes from an offset and accepts non-minimal lengths", () => {
    const nonMinimal = hex("00 81 7e 0002 6869"); // "hi" with a 16-bit length
    const r = decodeFrame(nonMinimal, 1)!;
    expect(r.length).toBe(6);
    expect(toHex(r.frame.payload)).toBe("6869");
  });

  it("rejects a 64-bit length with its most significant bit set", () => {
    expect(() => decodeFrame(hex("82 7f 8000000000000000"))).toThrow(RemoteProtocolError);
  });

  it("rejects bad arguments to encodeFrame", () => {
    expect(() => encodeFrame({ opcode: 16 })).toThrow(RangeError);
    expect(() => encodeFrame({ opcode: 1, mask: new Uint8Array(3) })).toThrow(RangeError);
  });
});
