/**
 * Small helpers over `Uint8Array`. `Buffer` (present in Node and Bun) is used
 * for the encodings because it is the fastest path in both runtimes.
 *
 * @module
 */
import { Buffer } from "node:buffer";

/** Bytes as accepted by the public APIs: raw bytes or a string (UTF-8). */
export type BytesLike = Uint8Array | string;

const EMPTY = new Uint8Array(0);

/** An empty byte array, shared. */
export const EMPTY_BYTES: Uint8Array = EMPTY;

/**
 * UTF-8 bytes of a string, or the bytes themselves.
 *
 * @example
 * ```ts
 * toBytes("é").length // 2
 * ```
 */
export function toBytes(data: BytesLike): Uint8Array {
  return typeof data === "string" ? Buffer.from(data, "utf8") : data;
}

/** Bytes of a latin1 (one byte per char) string, such as an HTTP head. */
export function latin1Bytes(text: string): Uint8Array {
  return Buffer.from(text, "latin1");
}

type Latin1Writer = (buffer: Buffer, text: string, offset: number) => number;
/**
 * Writes `text` as latin1 into `buffer` at `offset`; returns the bytes
 * written. Node and Bun have `Buffer#latin1Write`, about twice as fast as
 * the documented `write(text, offset, "latin1")`, which is the fallback.
 */
export const latin1Write: Latin1Writer =
  typeof (Buffer.prototype as { latin1Write?: unknown }).latin1Write === "function"
    ? (buffer, text, offset) => (buffer as unknown as { latin1Write(t: string, o: number): number }).latin1Write(text, offset)
    : (buffer, text, offset) => buffer.write(text, offset, "latin1");

/** Decodes bytes as UTF-8 (invalid sequences become U+FFFD). */
export function utf8Decode(data: Uint8Array): string {
  return asBuffer(data).toString("utf8");
}

/** Decodes bytes as latin1: one char per byte, never fails. */
export function latin1Decode(data: Uint8Array): string {
  return asBuffer(data).toString("latin1");
}

/** A Buffer view over the same memory (no copy). */
export function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Joins chunks into one array. One chunk is returned as it is (no copy).
 *
 * @example
 * ```ts
 * concatBytes([toBytes("ab"), toBytes("c")]) // bytes of "abc"
 * ```
 */
export function concatBytes(chunks: readonly Uint8Array[], totalLength?: number): Uint8Array {
  if (chunks.length === 0) return EMPTY;
  if (chunks.length === 1) return chunks[0]!;
  return Buffer.concat(chunks as Uint8Array[], totalLength);
}

/** True if both arrays hold the same bytes. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  return asBuffer(a).equals(b);
}
