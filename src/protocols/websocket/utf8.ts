/**
 * Incremental UTF-8 validation with Björn Höhrmann's DFA ("Flexible and
 * Economical UTF-8 Decoder", http://bjoern.hoehrmann.de/utf-8/decoder/dfa/),
 * flattened into one transition table indexed by `state + byte` so that each
 * byte costs one table lookup; ASCII runs are skipped without a lookup.
 *
 * The automaton rejects at the first byte that cannot continue any valid
 * sequence (RFC 3629 §4, Unicode Table 3-7): overlongs (C0, C1, E0 80..9F,
 * F0 80..8F), surrogates (ED A0..BF), code points above U+10FFFF (F4 90..,
 * F5..FF) and stray continuation bytes. That is what RFC 6455 §8.1 asks of a
 * text message: "When an endpoint is to interpret a byte stream as UTF-8 but
 * finds that the byte stream is not, in fact, a valid UTF-8 stream, that
 * endpoint MUST _Fail the WebSocket Connection_", and it is what makes the
 * engine fail fast, in the middle of a fragment, as Autobahn 6.4.x expects.
 *
 * @module
 */

import * as nodeBuffer from "node:buffer";

/** The state after a complete, valid sequence (also the initial state). */
export const UTF8_ACCEPT = 0;
/** The state after an invalid byte; it never leaves it. */
export const UTF8_REJECT = 256;

/*
 * Byte classes of Höhrmann's table:
 *  0: 00..7F  1: 80..8F  9: 90..9F  7: A0..BF  8: C0 C1 F5..FF  2: C2..DF
 * 10: E0      3: E1..EC EE EF  4: ED  11: F0  6: F1..F3  5: F4
 * and his transitions over states 0 (accept), 12 (reject), 24 (one more
 * continuation byte), 36 (two more), 48 (after E0), 60 (after ED), 72 (after
 * F0), 84 (after F1..F3), 96 (after F4).
 */
const CLASS_RANGES: ReadonlyArray<readonly [number, number, number]> = [
  [0x00, 0x7f, 0], [0x80, 0x8f, 1], [0x90, 0x9f, 9], [0xa0, 0xbf, 7],
  [0xc0, 0xc1, 8], [0xc2, 0xdf, 2], [0xe0, 0xe0, 10], [0xe1, 0xec, 3],
  [0xed, 0xed, 4], [0xee, 0xef, 3], [0xf0, 0xf0, 11], [0xf1, 0xf3, 6],
  [0xf4, 0xf4, 5], [0xf5, 0xff, 8],
];
// prettier-ignore
const HOEHRMANN_TRANSITIONS = [
   0, 12, 24, 36, 60, 96, 84, 12, 12, 12, 48, 72,
  12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
  12,  0, 12, 12, 12, 12, 12,  0, 12,  0, 12, 12,
  12, 24, 12, 12, 12, 12, 12, 24, 12, 24, 12, 12,
  12, 12, 12, 12, 12, 12, 12, 24, 12, 12, 12, 12,
  12, 24, 12, 12, 12, 12, 12, 12, 12, 24, 12, 12,
  12, 12, 12, 12, 12, 12, 12, 36, 12, 36, 12, 12,
  12, 36, 12, 12, 12, 12, 12, 36, 12, 36, 12, 12,
  12, 36, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
];

/** `TABLE[state + byte]` is the next state; states are multiples of 256. */
const TABLE: Uint16Array = (() => {
  const classOf = new Uint8Array(256);
  for (const [from, to, cls] of CLASS_RANGES) classOf.fill(cls, from, to + 1);
  const table = new Uint16Array(9 * 256);
  for (let s = 0; s < 9; s++) {
    for (let b = 0; b < 256; b++) {
      table[s * 256 + b] = (HOEHRMANN_TRANSITIONS[s * 12 + classOf[b]!]! / 12) * 256;
    }
  }
  return table;
})();

/**
 * `isUtf8` from `node:buffer` (simdutf in Node >= 18.14 and in Bun) checks
 * long runs 20 to 70 times faster than the DFA; the DFA still decides the
 * state at the edges and finds the position when the run is invalid.
 */
const nativeIsUtf8: ((input: Uint8Array) => boolean) | null =
  typeof (nodeBuffer as { isUtf8?: unknown }).isUtf8 === "function"
    ? (nodeBuffer as unknown as { isUtf8: (input: Uint8Array) => boolean }).isUtf8
    : null;

/** Runs at least this long go to the native validator first (measured: the DFA wins below). */
const NATIVE_MIN_RUN = 256;

/**
 * Runs the DFA over `bytes[start..end)` from `state`. Returns the new state,
 * or `-1 - i` if the byte at index `i` was rejected (so a negative result
 * carries the position).
 *
 * @example
 * ```ts
 * utf8Step(UTF8_ACCEPT, new Uint8Array([0xe2, 0x82]), 0, 2) // > 0: inside "€"
 * utf8Step(UTF8_ACCEPT, new Uint8Array([0x61, 0xff]), 0, 2) // -2: byte 1 is invalid
 * ```
 */
export function utf8Step(state: number, bytes: Uint8Array, start: number, end: number): number {
  if (end - start >= NATIVE_MIN_RUN && nativeIsUtf8 !== null && state !== UTF8_REJECT) {
    return nativeStep(state, bytes, start, end);
  }
  return dfaStep(state, bytes, start, end);
}

function dfaStep(state: number, bytes: Uint8Array, start: number, end: number): number {
  const table = TABLE;
  let s = state;
  let i = start;
  while (i < end) {
    if (s === UTF8_ACCEPT) {
      // ASCII run: no lookup while the high bit is clear.
      while (i < end && bytes[i]! < 0x80) i++;
      if (i === end) break;
    }
    s = table[s + bytes[i]!]!;
    if (s === UTF8_REJECT) return -1 - i;
    i++;
  }
  return s;
}

/**
 * The native validator over the longest prefix that ends on a character
 * boundary, the DFA over the edges; on failure the DFA rescans for the
 * position (failure is the slow path).
 */
function nativeStep(state: number, bytes: Uint8Array, start: number, end: number): number {
  let i = start;
  let s = state;
  // Finish a sequence left open by the previous piece.
  while (s !== UTF8_ACCEPT && i < end) {
    s = TABLE[s + bytes[i]!]!;
    if (s === UTF8_REJECT) return -1 - i;
    i++;
  }
  // Cut before a trailing sequence that may be incomplete.
  let j = end - 1;
  let back = 0;
  while (back < 3 && j > i && (bytes[j]! & 0xc0) === 0x80) {
    j--;
    back++;
  }
  const cut = bytes[j]! >= 0xc0 ? j : end;
  if (!nativeIsUtf8!(bytes.subarray(i, cut))) return dfaStep(UTF8_ACCEPT, bytes, i, end);
  return dfaStep(UTF8_ACCEPT, bytes, cut, end);
}

/**
 * Validates a complete UTF-8 byte string. Returns -1 when it is valid, else
 * the index of the first byte that cannot be part of valid UTF-8 (the length
 * of the input when it ends inside a multi-byte sequence).
 *
 * @example
 * ```ts
 * validateUtf8(new TextEncoder().encode("κόσμε")) // -1
 * validateUtf8(new Uint8Array([0x61, 0xed, 0xa0, 0x80])) // 2 (a surrogate)
 * validateUtf8(new Uint8Array([0x61, 0xe2, 0x82]))       // 3 (truncated)
 * ```
 */
export function validateUtf8(bytes: Uint8Array, start = 0, end = bytes.length): number {
  const s = utf8Step(UTF8_ACCEPT, bytes, start, end);
  if (s < 0) return -1 - s - start;
  return s === UTF8_ACCEPT ? -1 : end - start;
}

/**
 * True if the bytes are valid UTF-8.
 *
 * @example
 * ```ts
 * isValidUtf8(new Uint8Array([0xc3, 0xa9])) // true ("é")
 * isValidUtf8(new Uint8Array([0xc0, 0xaf])) // false (overlong "/")
 * ```
 */
export function isValidUtf8(bytes: Uint8Array): boolean {
  return validateUtf8(bytes) === -1;
}

/**
 * Validates UTF-8 that arrives in pieces (the fragments of a text message).
 * `push` fails as soon as the bytes so far cannot start any valid string;
 * `finish` fails when the last piece ends inside a sequence. Positions count
 * from the first byte ever pushed.
 *
 * @example
 * ```ts
 * const v = new Utf8Validator();
 * v.push(new Uint8Array([0xe2, 0x82])); // -1: "€" is not finished yet
 * v.push(new Uint8Array([0xac]));       // -1
 * v.finish();                           // -1: valid
 * ```
 */
export class Utf8Validator {
  #state = UTF8_ACCEPT;
  #length = 0;

  /** Bytes pushed so far. */
  get length(): number {
    return this.#length;
  }

  /** True if the bytes so far end on a character boundary. */
  get complete(): boolean {
    return this.#state === UTF8_ACCEPT;
  }

  /**
   * Feeds `bytes[start..end)`. Returns -1 while valid, else the position of
   * the first invalid byte (counted from the first byte ever pushed); after a
   * failure the validator stays failed.
   */
  push(bytes: Uint8Array, start = 0, end = bytes.length): number {
    if (this.#state === UTF8_REJECT) return this.#length;
    const s = utf8Step(this.#state, bytes, start, end);
    if (s < 0) {
      const position = this.#length + (-1 - s - start);
      this.#state = UTF8_REJECT;
      this.#length = position;
      return position;
    }
    this.#state = s;
    this.#length += end - start;
    return -1;
  }

  /** Ends the input: -1 if valid, else the failure position. */
  finish(): number {
    if (this.#state === UTF8_ACCEPT) return -1;
    this.#state = UTF8_REJECT;
    return this.#length;
  }

  /** Starts over for a new string. */
  reset(): void {
    this.#state = UTF8_ACCEPT;
    this.#length = 0;
  }
}
