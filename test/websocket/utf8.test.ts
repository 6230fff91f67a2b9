import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isValidUtf8, Utf8Validator, utf8Step, UTF8_ACCEPT, validateUtf8 } from "../../src/protocols/websocket";
import { concat, hex, referenceFirstInvalid, utf8 } from "./helpers";

/** Valid UTF-8 text with, sometimes, a few bytes spliced in or cut out. */
const nearlyValid = fc
  .tuple(
    fc.string({ unit: "binary", maxLength: 600 }),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
    fc.boolean(),
  )
  .map(([s, edits, truncate]) => {
    const bytes = Array.from(utf8(s));
    for (const [at, b] of edits) bytes.splice(bytes.length === 0 ? 0 : at % (bytes.length + 1), 0, b);
    if (truncate && bytes.length > 0) bytes.pop();
    return Uint8Array.from(bytes);
  });

const anyBytes = fc.uint8Array({ maxLength: 700 });

describe("validateUtf8", () => {
  it.each([
    ["ascii", "48656c6c6f", -1],
    ["κόσμε", "cebae1bdb9cf83cebcceb5", -1],
    ["U+FFFF (a noncharacter, valid)", "efbfbf", -1],
    ["U+10FFFF", "f48fbfbf", -1],
    ["U+D7FF", "ed9fbf", -1],
    ["U+E000", "ee8080", -1],
    ["a stray continuation byte", "61 80", 1],
    ["an overlong '/' (C0 AF)", "c0af", 0],
    ["an overlong 3-byte NUL", "e0 80 80", 1],
    ["an overlong 4-byte (F0 80..8F)", "f0 8f bf bf", 1],
    ["a high surrogate (ED A0 80)", "61 ed a0 80", 2],
    ["a low surrogate (ED BF BF)", "ed bf bf", 1],
    ["above U+10FFFF (F4 90)", "f4 90 80 80", 1],
    ["F5 (never valid)", "f5 80 80 80", 0],
    ["FF", "ff", 0],
    ["truncated € at the end", "61 e2 82", 3],
    ["€ cut by ASCII", "e2 82 61", 2],
    ["Autobahn 6.3.1: 'κόσμε' + ED A0 80 + 'edited'", "cebae1bdb9cf83cebcceb5eda080656469746564", 12],
  ])("%s", (_name, h, position) => {
    expect(validateUtf8(hex(h))).toBe(position);
    expect(referenceFirstInvalid(hex(h))).toBe(position);
    expect(isValidUtf8(hex(h))).toBe(position === -1);
  });

  it("agrees with the reference on random bytes", () => {
    fc.assert(fc.property(anyBytes, (b) => validateUtf8(b) === referenceFirstInvalid(b)), { numRuns: 400 });
  });

  it("agrees with the reference on nearly valid text (short and long runs)", () => {
    fc.assert(fc.property(nearlyValid, (b) => validateUtf8(b) === referenceFirstInvalid(b)), { numRuns: 400 });
  });

  it("accepts every valid string", () => {
    fc.assert(fc.property(fc.string({ unit: "grapheme", maxLength: 400 }), (s) => validateUtf8(utf8(s)) === -1), { numRuns: 200 });
  });

  it("handles long runs whose edges cut a sequence (the native fast path)", () => {
    const run = utf8("a".repeat(300));
    const euro = hex("e2 82 ac");
    for (let cut = 0; cut <= 3; cut++) {
      const bytes = concat(run, euro.subarray(0, cut));
      expect(validateUtf8(bytes)).toBe(cut === 0 || cut === 3 ? -1 : bytes.length);
      const state = utf8Step(UTF8_ACCEPT, bytes, 0, bytes.length);
      expect(state === UTF8_ACCEPT).toBe(cut === 0 || cut === 3);
      // Continue the sequence in the next piece.
      if (cut > 0 && cut < 3) expect(utf8Step(state, euro, cut, 3)).toBe(UTF8_ACCEPT);
    }
    // An invalid byte deep inside a long run is found at its position.
    const bad = concat(run, hex("ff"), run);
    expect(validateUtf8(bad)).toBe(300);
    // Stray continuation bytes at the end of a long run.
    expect(validateUtf8(concat(run, hex("80 80 80 80")))).toBe(300);
  });
});

describe("Utf8Validator (incremental)", () => {
  it("fails at the same position as the reference for any split of the input", () => {
    fc.assert(
      fc.property(nearlyValid, fc.array(fc.nat(), { maxLength: 6 }), (bytes, cutsRaw) => {
        const cuts = [...new Set(cutsRaw.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort((a, b) => a - b);
        const v = new Utf8Validator();
        let found = -1;
        let prev = 0;
        for (const c of [...cuts, bytes.length]) {
          const r = v.push(bytes, prev, c);
          if (r !== -1 && found === -1) found = r;
          prev = c;
        }
        if (found === -1) found = v.finish();
        return found === referenceFirstInvalid(bytes);
      }),
      { numRuns: 400 },
    );
  });

  it("fails fast: the invalid byte is reported by the push that carries it", () => {
    const v = new Utf8Validator();
    expect(v.push(hex("cebae1bdb9cf83cebcceb5"))).toBe(-1); // "κόσμε", 11 bytes
    expect(v.push(hex("ed"))).toBe(-1); // could still be U+D000..U+D7FF
    expect(v.complete).toBe(false);
    expect(v.push(hex("a0 80"))).toBe(12); // a surrogate: rejected at A0
    expect(v.push(utf8("more"))).toBe(12); // stays failed
    v.reset();
    expect(v.push(hex("e2 82"))).toBe(-1);
    expect(v.finish()).toBe(2);
  });
});
