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
  const k0 = key[keyOffset & 3]!;
  const k1 = key[(keyOffset + 1) & 3]!;
  const k2 = key[(keyOffset + 2) & 3]!;
  const k3 = key[(keyOffset + 3) & 3]!;
  if ((k0 | k1 | k2 | k3) === 0) return;
  let i = start;
  if (end - start >= WORD_LOOP_MIN) {
    // Bytes up to the first 4-byte boundary of the underlying buffer.
    const misalign = (data.byteOffset + i) & 3;
    const head = misalign === 0 ? 0 : 4 - misalign;
    for (let h = 0; h < head; h++, i++) data[i] = data[i]! ^ key[(keyOffset + h) & 3]!;
    const words = (end - i) >>> 2;
    // Key rotated so that byte `i` meets key byte `(i - start) % 4`.
    keyBytes[0] = key[(keyOffset + head) & 3]!;
    keyBytes[1] = key[(keyOffset + head + 1) & 3]!;
    keyBytes[2] = key[(keyOffset + head + 2) & 3]!;
    keyBytes[3] = key[(keyOffset + head + 3) & 3]!;
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
    // Tail: the key continues where the words stopped.
    for (let t = keyOffset + head; i < end; i++, t++) data[i] = data[i]! ^ key[t & 3]!;
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
