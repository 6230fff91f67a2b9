/**
 * Masking (RFC 6455 §5.3): `transformed[i] = original[i] ^ key[i % 4]`, the
 * same operation both ways. Applied in place: the engine masks frames it
 * has just written into its own output buffer, and unmasks payloads inside
 * input chunks that the caller handed over to it.
 *
 * Short payloads take a byte loop; longer ones XOR four bytes at a time
 * through a `Uint32Array` over the 4-byte-aligned middle of the range, with
 * the key rotated to match the alignment. Measured on Node 20 (x64): the
 * word loop is ~4x faster than the byte loop from a few hundred bytes on,
 * and creating the view costs more than it saves below ~128 bytes.
 *
 * @module
 */

/** Ranges shorter than this use the byte loop. */
const WORD_LOOP_MIN = 128;

/** Scratch for building the rotated key as a native-endian word. */
const keyBytes = new Uint8Array(4);
const keyWord = new Uint32Array(keyBytes.buffer);

/**
 * XORs `data[start..end)` in place with the 4-byte `key`, starting at
 * `keyOffset` (0..3) into the key: the position in the payload of
 * `data[start]`, modulo 4, when a payload is processed in pieces.
 *
 * @example
 * ```ts
 * const key = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);
 * const data = new Uint8Array([0x7f, 0x9f, 0x4d, 0x51, 0x58]); // RFC 6455 §5.7 "Hello"
 * applyMask(data, 0, 5, key, 0);
 * new TextDecoder().decode(data); // "Hello"
 * ```
 */
export function applyMask(data: Uint8Array, start: number, end: number, key: Uint8Array, keyOffset: number): void {
  applyMaskKey(data, start, end, (key[0]! << 24) | (key[1]! << 16) | (key[2]! << 8) | key[3]!, keyOffset);
}

/**
 * {@link applyMask} with the key as a 32-bit number, its first byte in the
 * high bits (the order of the key on the wire, as `readInt32BE` gives it):
 * the engine keeps a frame's key this way instead of in a buffer of its own.
 *
 * @example
 * ```ts
 * const data = new Uint8Array([0x7f, 0x9f, 0x4d, 0x51, 0x58]); // RFC 6455 §5.7 "Hello"
 * applyMaskKey(data, 0, 5, 0x37fa213d, 0);
 * new TextDecoder().decode(data); // "Hello"
 * ```
 */
export function applyMaskKey(data: Uint8Array, start: number, end: number, key: number, keyOffset: number): void {
  // Rotated so that the byte for data[start] is the high byte.
  const shift = (keyOffset & 3) << 3;
  const k = shift === 0 ? key | 0 : (key << shift) | (key >>> (32 - shift));
  if (k === 0) return;
  const k0 = k >>> 24;
  const k1 = (k >>> 16) & 0xff;
  const k2 = (k >>> 8) & 0xff;
  const k3 = k & 0xff;
  let i = start;
  if (end - start >= WORD_LOOP_MIN) {
    // Bytes up to the first 4-byte boundary of the underlying buffer.
    const misalign = (data.byteOffset + i) & 3;
    const head = misalign === 0 ? 0 : 4 - misalign;
    for (let h = 0; h < head; h++, i++) data[i] = data[i]! ^ ((k >>> (24 - (h << 3))) & 0xff);
    const words = (end - i) >>> 2;
    // Key rotated so that byte `i` meets key byte `(i - start) % 4`.
    const r = head === 0 ? k : (k << (head << 3)) | (k >>> (32 - (head << 3)));
    keyBytes[0] = r >>> 24;
    keyBytes[1] = (r >>> 16) & 0xff;
    keyBytes[2] = (r >>> 8) & 0xff;
    keyBytes[3] = r & 0xff;
    const w = keyWord[0]!;
    const view = new Uint32Array(data.buffer, data.byteOffset + i, words);
    let j = 0;
    const unrolled = words & ~3;
    for (; j < unrolled; j += 4) {
      view[j] = view[j]! ^ w;
      view[j + 1] = view[j + 1]! ^ w;
      view[j + 2] = view[j + 2]! ^ w;
      view[j + 3] = view[j + 3]! ^ w;
    }
    for (; j < words; j++) view[j] = view[j]! ^ w;
    i += words << 2;
    // Tail: the key continues where the words stopped (`r` starts there).
    for (let t = 0; i < end; i++, t++) data[i] = data[i]! ^ ((r >>> (24 - (t << 3))) & 0xff);
    return;
  }
  const stop = end - 3;
  for (; i < stop; i += 4) {
    data[i] = data[i]! ^ k0;
    data[i + 1] = data[i + 1]! ^ k1;
    data[i + 2] = data[i + 2]! ^ k2;
    data[i + 3] = data[i + 3]! ^ k3;
  }
  if (i < end) data[i] = data[i]! ^ k0;
  if (i + 1 < end) data[i + 1] = data[i + 1]! ^ k1;
  if (i + 2 < end) data[i + 2] = data[i + 2]! ^ k2;
}
