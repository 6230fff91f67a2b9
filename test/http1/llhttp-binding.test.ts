// Loading llhttp's wasm: the SIMD build where the runtime has it, and a clear
// error for a build that lacks what typhoon calls.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { METHODS, METHODS_HTTP } from "undici/lib/llhttp/constants.js";
import { checkLlhttpModule, ExecuteResult, LlhttpParser, llhttpFieldsInMemory, llhttpUsesSimd } from "../../src/protocols/http1/llhttp";

const CALLBACKS = [
  "wasm_on_url", "wasm_on_status", "wasm_on_message_begin", "wasm_on_header_field",
  "wasm_on_header_value", "wasm_on_headers_complete", "wasm_on_body", "wasm_on_message_complete",
];

/** A wasm module with one type `() -> ()`, importing `env.<name>` for each name, exporting nothing. */
function moduleImporting(names: string[]): WebAssembly.Module {
  const enc = new TextEncoder();
  const leb = (n: number): number[] => {
    const out: number[] = [];
    do {
      let b = n & 0x7f;
      n >>>= 7;
      if (n !== 0) b |= 0x80;
      out.push(b);
    } while (n !== 0);
    return out;
  };
  const str = (s: string): number[] => [...leb(enc.encode(s).length), ...enc.encode(s)];
  const section = (id: number, body: number[]): number[] => [id, ...leb(body.length), ...body];
  const types = section(1, [1, 0x60, 0, 0]);
  const imports = section(2, [...leb(names.length), ...names.flatMap((n) => [...str("env"), ...str(n), 0x00, 0])]);
  return new WebAssembly.Module(new Uint8Array([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...types, ...imports]));
}

/** A request parser whose callbacks do nothing but `onHeadersComplete`. */
function parserWith(onHeadersComplete: () => number): LlhttpParser {
  return new LlhttpParser("request", {
    onMessageBegin: () => 0,
    onUrl: () => 0,
    onStatus: () => 0,
    onHeaderField: () => 0,
    onHeaderValue: () => 0,
    onHeadersComplete,
    onBody: () => 0,
    onMessageComplete: () => 0,
  });
}

describe("the llhttp binding", () => {
  it("loads the SIMD build (Node 20+ and Bun both run wasm SIMD)", () => {
    expect(llhttpUsesSimd()).toBe(true);
    const heads: string[] = [];
    const parser = parserWith(() => {
      heads.push("head");
      return 0;
    });
    expect(parser.execute(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))).toBe(ExecuteResult.OK);
    expect(heads).toEqual(["head"]);
    parser.destroy();
  });

  it("reads the method and version from the parser's memory, and they are llhttp's", () => {
    // The pinned undici's llhttp has them where the probe looks.
    expect(llhttpFieldsInMemory()).toBe(true);
    // Every method llhttp accepts in HTTP/1.x (PRI only starts HTTP/2).
    const http = new Set(METHODS_HTTP as number[]);
    const names = Object.entries(METHODS as Record<string, number>)
      .filter(([name, n]) => http.has(n) && name !== "PRI")
      .map(([name]) => name);
    expect(names.length).toBeGreaterThan(30);
    const seen: string[] = [];
    const parser: LlhttpParser = parserWith(() => {
      seen.push(`${parser.method} ${parser.httpMajor}.${parser.httpMinor}`);
      return 0;
    });
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom(...names), fc.constantFrom("1.0", "1.1")), { minLength: 1, maxLength: 8 }), (requests) => {
        seen.length = 0;
        const text = requests.map(([method, version]) => `${method} ${method === "CONNECT" ? "a:1" : "/"} HTTP/${version}\r\nHost: a\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n`).join("");
        parser.reset();
        const result = parser.execute(Uint8Array.from(text, (c) => c.charCodeAt(0)));
        const expected = requests.map(([method, version]) => `${method} ${version}`);
        if (result === ExecuteResult.UPGRADE) expect(seen).toEqual(expected.slice(0, seen.length));
        else {
          expect(result).toBe(ExecuteResult.OK);
          expect(seen).toEqual(expected);
        }
      }),
      { numRuns: 200 },
    );
    parser.destroy();
  });

  it("names the missing callback of a build that does not import it", () => {
    expect(() => checkLlhttpModule(moduleImporting([]))).toThrow(
      "Cannot load llhttp: the wasm from undici does not import wasm_on_url; pin the undici version typhoon was built with",
    );
    expect(() => checkLlhttpModule(moduleImporting(CALLBACKS.filter((n) => n !== "wasm_on_body")))).toThrow(/does not import wasm_on_body/);
  });

  it("names the missing export of a build that does not export it", () => {
    expect(() => checkLlhttpModule(moduleImporting(CALLBACKS))).toThrow(
      "Cannot load llhttp: the wasm from undici does not export memory; pin the undici version typhoon was built with",
    );
  });
});
