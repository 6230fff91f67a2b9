/**
 * The frame format of RFC 6455 §5.2, as standalone helpers: header size and
 * writing (used by the engine's output path), and whole-frame encode/decode
 * for tools and tests. The engine itself parses incrementally from a chunk
 * list (see `connection.ts`).
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-------+-+-------------+-------------------------------+
 * |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
 * |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
 * |N|V|V|V|       |S|             |   (if payload len==126/127)   |
 * | |1|2|3|       |K|             |                               |
 * +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
 * |     Extended payload length continued, if payload len == 127  |
 * + - - - - - - - - - - - - - - - +-------------------------------+
 * |                               |Masking-key, if MASK set to 1  |
 * +-------------------------------+-------------------------------+
 * ```
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { RemoteProtocolError } from "../../core/errors";
import { applyMask } from "./mask";
import { PROTOCOL_ERROR, WS_ERR } from "./constants";

/** One frame, as plain data. `mask` is the 4-byte masking key, or null. */
export interface Frame {
  readonly fin: boolean;
  readonly rsv1: boolean;
  readonly rsv2: boolean;
  readonly rsv3: boolean;
  readonly opcode: number;
  /** The unmasked payload. */
  readonly payload: Uint8Array;
  readonly mask: Uint8Array | null;
}

/** What {@link encodeFrame} needs; omitted flags are false, `mask` null. */
export interface FrameInit {
  fin?: boolean;
  rsv1?: boolean;
  rsv2?: boolean;
  rsv3?: boolean;
  opcode: number;
  payload?: Uint8Array;
  mask?: Uint8Array | null;
}

/**
 * Header size in bytes for a payload of `length` bytes.
 *
 * @example
 * ```ts
 * frameHeaderSize(125, false) // 2
 * frameHeaderSize(126, true)  // 8: 2 + 16-bit length + mask key
 * frameHeaderSize(65536, false) // 10
 * ```
 */
export function frameHeaderSize(length: number, masked: boolean): number {
  return (length < 126 ? 2 : length < 65536 ? 4 : 10) + (masked ? 4 : 0);
}

/**
 * Writes a frame header at `target[offset]` and returns its size. `first` is
 * the first byte (FIN, RSV and opcode bits). RFC 6455 §5.2: lengths use the
 * shortest form (7 bits up to 125, 16 bits up to 65535, else 64 bits with
 * the most significant bit 0).
 *
 * @example
 * ```ts
 * const head = new Uint8Array(14);
 * writeFrameHeader(head, 0, 0x81, 5, null) // 2: [0x81, 0x05]
 * ```
 */
export function writeFrameHeader(
  target: Uint8Array,
  offset: number,
  first: number,
  length: number,
  mask: Uint8Array | null,
): number {
  const maskBit = mask === null ? 0 : 0x80;
  let o = offset;
  target[o++] = first;
  if (length < 126) {
    target[o++] = maskBit | length;
  } else if (length < 65536) {
    target[o++] = maskBit | 126;
    target[o++] = length >>> 8;
    target[o++] = length & 0xff;
  } else {
    target[o++] = maskBit | 127;
    const hi = Math.floor(length / 0x100000000);
    const lo = length >>> 0;
    target[o++] = hi >>> 24;
    target[o++] = (hi >>> 16) & 0xff;
    target[o++] = (hi >>> 8) & 0xff;
    target[o++] = hi & 0xff;
    target[o++] = lo >>> 24;
    target[o++] = (lo >>> 16) & 0xff;
    target[o++] = (lo >>> 8) & 0xff;
    target[o++] = lo & 0xff;
  }
  if (mask !== null) {
    target[o++] = mask[0]!;
    target[o++] = mask[1]!;
    target[o++] = mask[2]!;
    target[o++] = mask[3]!;
  }
  return o - offset;
}

/**
 * Encodes one frame (header, then the payload masked with `mask` if given).
 * No protocol rule is checked: this writes whatever it is told, which is
 * what tests and fuzzers need.
 *
 * @example
 * ```ts
 * encodeFrame({ fin: true, opcode: 0x1, payload: new TextEncoder().encode("Hello") })
 * // 81 05 48 65 6c 6c 6f (RFC 6455 §5.7)
 * ```
 */
export function encodeFrame(frame: FrameInit): Uint8Array {
  const payload = frame.payload ?? new Uint8Array(0);
  const mask = frame.mask ?? null;
  if (mask !== null && mask.length !== 4) throw new RangeError("Cannot encode a frame: a mask key has 4 bytes");
  if (!Number.isInteger(frame.opcode) || frame.opcode < 0 || frame.opcode > 15) {
    throw new RangeError(`Cannot encode a frame: opcode ${frame.opcode} is not in 0..15`);
  }
  const first =
    (frame.fin === true ? 0x80 : 0) |
    (frame.rsv1 === true ? 0x40 : 0) |
    (frame.rsv2 === true ? 0x20 : 0) |
    (frame.rsv3 === true ? 0x10 : 0) |
    frame.opcode;
  const out = Buffer.allocUnsafe(frameHeaderSize(payload.length, mask !== null) + payload.length);
  const head = writeFrameHeader(out, 0, first, payload.length, mask);
  out.set(payload, head);
  if (mask !== null) applyMask(out, head, out.length, mask, 0);
  return out;
}

/**
 * Decodes one frame from `bytes[offset..]`. Returns the frame (payload
 * unmasked, copied) and the number of bytes it took, or null if the bytes
 * end before the frame does. Only the format is checked (RFC 6455 §5.2: "the
 * most significant bit MUST be 0" of a 64-bit length); the protocol rules
 * (masking direction, opcodes, control frame sizes...) are the engine's.
 *
 * @example
 * ```ts
 * decodeFrame(new Uint8Array([0x89, 0x00]))
 * // { frame: { fin: true, opcode: 9, payload: <empty>, mask: null, ... }, length: 2 }
 * ```
 */
export function decodeFrame(bytes: Uint8Array, offset = 0): { frame: Frame; length: number } | null {
  const avail = bytes.length - offset;
  if (avail < 2) return null;
  const b0 = bytes[offset]!;
  const b1 = bytes[offset + 1]!;
  const masked = (b1 & 0x80) !== 0;
  let length = b1 & 0x7f;
  let pos = offset + 2;
  if (length === 126) {
    if (avail < 4) return null;
    length = (bytes[pos]! << 8) | bytes[pos + 1]!;
    pos += 2;
  } else if (length === 127) {
    if (avail < 10) return null;
    const hi = ((bytes[pos]! << 24) | (bytes[pos + 1]! << 16) | (bytes[pos + 2]! << 8) | bytes[pos + 3]!) >>> 0;
    const lo = ((bytes[pos + 4]! << 24) | (bytes[pos + 5]! << 16) | (bytes[pos + 6]! << 8) | bytes[pos + 7]!) >>> 0;
    if (hi >= 0x80000000) {
      throw new RemoteProtocolError(WS_ERR.INVALID_PAYLOAD_LENGTH, "Cannot decode a frame: the 64-bit payload length has its most significant bit set", { closeCode: PROTOCOL_ERROR, position: pos });
    }
    length = hi * 0x100000000 + lo;
    pos += 8;
  }
  let mask: Uint8Array | null = null;
  if (masked) {
    if (bytes.length - pos < 4) return null;
    mask = Uint8Array.from(bytes.subarray(pos, pos + 4));
    pos += 4;
  }
  if (bytes.length - pos < length) return null;
  const payload = Uint8Array.from(bytes.subarray(pos, pos + length));
  if (mask !== null) applyMask(payload, 0, payload.length, mask, 0);
  return {
    frame: {
      fin: (b0 & 0x80) !== 0,
      rsv1: (b0 & 0x40) !== 0,
      rsv2: (b0 & 0x20) !== 0,
      rsv3: (b0 & 0x10) !== 0,
      opcode: b0 & 0x0f,
      payload,
      mask,
    },
    length: pos + length - offset,
  };
}
