/**
 * The one adapter between typhoon and llhttp, the HTTP parser inside Node.js,
 * loaded as WebAssembly from the build that the `undici` package publishes
 * (its SIMD build where the runtime supports it).
 *
 * How this works: one wasm instance serves every parser. Each parser is a
 * `llhttp_t` allocated in wasm memory; input is copied into one scratch
 * buffer in wasm memory, reused for every `execute`. The wasm imports call a
 * module-level "current parser" that is set around each `execute`, and the
 * parser's handler receives spans as offsets into the caller's own chunk,
 * so that nothing outside this file sees a wasm pointer, an errno or a
 * callback return code other than the named constants below.
 *
 * @module
 */
import { createRequire } from "node:module";

// undici's llhttp files are CommonJS modules whose export is the wasm as a
// Buffer. They are loaded with require, not imported: a bundler's ESM
// interop (esbuild's __toESM, used by the CommonJS build) would copy every
// byte index of that Buffer into a getter, ~100k of them, at startup.
// In a CommonJS build `__filename` is this file; in ESM, import.meta.url is.
const requireFromHere = createRequire(typeof __filename === "string" ? __filename : import.meta.url);
const llhttpWasm = requireFromHere("undici/lib/llhttp/llhttp-wasm.js") as Uint8Array<ArrayBuffer>;
const llhttpSimdWasm = requireFromHere("undici/lib/llhttp/llhttp_simd-wasm.js") as Uint8Array<ArrayBuffer>;
const { METHODS, ERROR } = requireFromHere("undici/lib/llhttp/constants.js") as {
  METHODS: Record<string, number>;
  ERROR: Record<string, number> & { PAUSED: number; PAUSED_UPGRADE: number; PAUSED_H2_UPGRADE: number };
};

/** Which side of HTTP a parser reads. */
export type ParserKind = "request" | "response";

/** What a handler callback returns to the parser. */
export const CB_OK = 0;
/** Returned by a callback to stop parsing with an error (the handler keeps its own reason). */
export const CB_ERROR = -1;
/** Returned by a callback to pause the parser; `execute` stops and reports the offset. */
export const CB_PAUSE = ERROR.PAUSED as number;
/** Returned by `onHeadersComplete`: the message has no body (response to HEAD, 1xx, 204, 304). */
export const CB_SKIP_BODY = 1;
/** Returned by `onHeadersComplete`: the message has no body and the protocol changes after it (2xx to CONNECT). */
export const CB_UPGRADE = 2;

/**
 * Receives what the parser finds. Span callbacks get offsets into the chunk
 * passed to {@link LlhttpParser.execute}; a span may be cut by the end of a
 * chunk and continue in the next one.
 */
export interface LlhttpHandler {
  onMessageBegin(): number;
  onUrl(start: number, length: number): number;
  onStatus(start: number, length: number): number;
  onHeaderField(start: number, length: number): number;
  onHeaderValue(start: number, length: number): number;
  onHeadersComplete(statusCode: number, upgrade: boolean, keepAlive: boolean): number;
  onBody(start: number, length: number): number;
  onMessageComplete(): number;
}

/** The result of {@link LlhttpParser.execute}. */
export const ExecuteResult = {
  /** The whole chunk was consumed. */
  OK: 0,
  /** A callback paused the parser; `stoppedAt` tells where. */
  PAUSED: 1,
  /** An Upgrade or CONNECT message is complete; the bytes after it are not HTTP. */
  UPGRADE: 2,
  /** The input is not valid HTTP; see `errorName`, `errorReason` and `stoppedAt`. */
  ERROR: 3,
} as const;
/** One of the values of {@link ExecuteResult}. */
export type ExecuteResult = (typeof ExecuteResult)[keyof typeof ExecuteResult];

interface LlhttpExports {
  memory: WebAssembly.Memory;
  _initialize?: () => void;
  llhttp_alloc(type: number): number;
  llhttp_free(ptr: number): void;
  malloc(size: number): number;
  free(ptr: number): void;
  llhttp_execute(ptr: number, data: number, len: number): number;
  llhttp_finish(ptr: number): number;
  llhttp_reset(ptr: number): void;
  llhttp_resume(ptr: number): void;
  llhttp_resume_after_upgrade(ptr: number): void;
  llhttp_get_errno(ptr: number): number;
  llhttp_get_error_reason(ptr: number): number;
  llhttp_get_error_pos(ptr: number): number;
  llhttp_get_method(ptr: number): number;
  llhttp_get_http_major(ptr: number): number;
  llhttp_get_http_minor(ptr: number): number;
  llhttp_get_status_code(ptr: number): number;
  llhttp_should_keep_alive(ptr: number): number;
  llhttp_message_needs_eof(ptr: number): number;
}

const REQUIRED_EXPORTS = [
  "memory", "llhttp_alloc", "llhttp_free", "malloc", "free", "llhttp_execute", "llhttp_finish",
  "llhttp_reset", "llhttp_resume", "llhttp_resume_after_upgrade", "llhttp_get_errno",
  "llhttp_get_error_reason", "llhttp_get_error_pos", "llhttp_get_method", "llhttp_get_http_major",
  "llhttp_get_http_minor", "llhttp_get_status_code", "llhttp_should_keep_alive", "llhttp_message_needs_eof",
] as const;

const REQUIRED_IMPORTS = [
  "wasm_on_url", "wasm_on_status", "wasm_on_message_begin", "wasm_on_header_field",
  "wasm_on_header_value", "wasm_on_headers_complete", "wasm_on_body", "wasm_on_message_complete",
] as const;

/** Method names by llhttp's method number. */
const METHOD_NAMES: string[] = [];
for (const [name, value] of Object.entries(METHODS as Record<string, number>)) METHOD_NAMES[value] = name;

/** llhttp's error names by number (`HPE_` prefix dropped, as in llhttp's constants). */
const ERROR_NAMES: string[] = [];
for (const [name, value] of Object.entries(ERROR as Record<string, number>)) ERROR_NAMES[value] = name;

/** The largest slice of input copied into wasm memory at once. */
const SCRATCH_MAX = 256 * 1024;

let wasm: LlhttpExports | null = null;
/** Frees the wasm memory of parsers that were dropped without `destroy`. */
const leaked = new FinalizationRegistry<number>((ptr) => wasm?.llhttp_free(ptr));
let simdUsed = false;
let scratchPtr = 0;
let scratchSize = 0;
let heapU8: Uint8Array;
/** The parser whose `execute` is running; the wasm imports dispatch to it. */
let current: LlhttpParser | null = null;
/** Offset in the caller's chunk that maps to `scratchPtr` during this execute. */
let currentBase = 0;

/**
 * A view of the wasm memory. Growing the memory detaches its old buffer
 * (length 0), so the view is made again only then, not per call: reading
 * `memory.buffer` is a native call.
 */
function heap(): Uint8Array {
  if (heapU8 === undefined || heapU8.byteLength === 0) heapU8 = new Uint8Array(wasm!.memory.buffer);
  return heapU8;
}

/**
 * Throws a clear error unless `module` imports every callback and exports
 * every function typhoon uses (an undici upgrade that changed llhttp's build
 * fails here, not on the first request).
 *
 * @internal Exported for tests.
 * @example
 * ```ts
 * checkLlhttpModule(new WebAssembly.Module(bytes)); // throws "Cannot load llhttp: ..."
 * ```
 */
export function checkLlhttpModule(module: WebAssembly.Module): void {
  const imports = WebAssembly.Module.imports(module).map((i) => i.name);
  for (const name of REQUIRED_IMPORTS) {
    if (!imports.includes(name)) {
      throw new Error(`Cannot load llhttp: the wasm from undici does not import ${name}; pin the undici version typhoon was built with`);
    }
  }
  const exportNames = WebAssembly.Module.exports(module).map((e) => e.name);
  for (const name of REQUIRED_EXPORTS) {
    if (!exportNames.includes(name)) {
      throw new Error(`Cannot load llhttp: the wasm from undici does not export ${name}; pin the undici version typhoon was built with`);
    }
  }
}

function instantiate(): LlhttpExports {
  let module: WebAssembly.Module | null = null;
  try {
    if (WebAssembly.validate(llhttpSimdWasm)) {
      module = new WebAssembly.Module(llhttpSimdWasm);
      simdUsed = true;
    }
  } catch {
    module = null;
  }
  module ??= new WebAssembly.Module(llhttpWasm);
  checkLlhttpModule(module);

  const span = (at: number) => at - scratchPtr + currentBase;
  const instance = new WebAssembly.Instance(module, {
    env: {
      wasm_on_url: (_p: number, at: number, len: number) => current!.handler.onUrl(span(at), len),
      wasm_on_status: (_p: number, at: number, len: number) => current!.handler.onStatus(span(at), len),
      wasm_on_message_begin: (_p: number) => current!.handler.onMessageBegin(),
      wasm_on_header_field: (_p: number, at: number, len: number) => current!.handler.onHeaderField(span(at), len),
      wasm_on_header_value: (_p: number, at: number, len: number) => current!.handler.onHeaderValue(span(at), len),
      wasm_on_headers_complete: (_p: number, status: number, upgrade: number, keepAlive: number) =>
        current!.handler.onHeadersComplete(status, upgrade === 1, keepAlive === 1),
      wasm_on_body: (_p: number, at: number, len: number) => current!.handler.onBody(span(at), len),
      wasm_on_message_complete: (_p: number) => current!.handler.onMessageComplete(),
    },
  });
  const exports = instance.exports as unknown as LlhttpExports;
  exports._initialize?.();
  return exports;
}

function ensureWasm(): LlhttpExports {
  if (wasm === null) {
    wasm = instantiate();
    fieldsOffset = probeFieldsOffset(wasm);
  }
  return wasm;
}

/**
 * Where `method`, `http_major` and `http_minor` sit in llhttp's parser
 * struct: three consecutive bytes after its int and pointer fields and its
 * 64-bit `content_length` and `type` (llhttp.h), byte 41 in wasm32. Read
 * from memory, they cost no call into wasm, which from inside one of
 * llhttp's callbacks (where the engine reads them) costs more than the rest
 * of the callback. -1: read them with llhttp's getters.
 */
let fieldsOffset = -1;
const FIELDS_OFFSET = 41;

/** A parser for the probe: its callbacks do nothing. */
const PROBE = {
  handler: {
    onMessageBegin: () => CB_OK,
    onUrl: () => CB_OK,
    onStatus: () => CB_OK,
    onHeaderField: () => CB_OK,
    onHeaderValue: () => CB_OK,
    onHeadersComplete: () => CB_OK,
    onBody: () => CB_OK,
    onMessageComplete: () => CB_OK,
  },
} as unknown as LlhttpParser;

/**
 * {@link FIELDS_OFFSET} if the struct of this llhttp build has the three
 * fields there (checked against its getters after parsing requests with
 * different methods and versions), else -1.
 */
function probeFieldsOffset(w: LlhttpExports): number {
  const samples = ["PUT / HTTP/1.0\r\n\r\n", "DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n", "M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n"];
  const ptr = w.llhttp_alloc(1);
  if (ptr === 0) return -1;
  const prev = current;
  current = PROBE;
  try {
    for (const sample of samples) {
      const bytes = Uint8Array.from(sample, (c) => c.charCodeAt(0));
      ensureScratch(bytes.length);
      heap().set(bytes, scratchPtr);
      w.llhttp_reset(ptr);
      if (w.llhttp_execute(ptr, scratchPtr, bytes.length) !== 0) return -1;
      const mem = heap();
      if (
        mem[ptr + FIELDS_OFFSET] !== w.llhttp_get_method(ptr) ||
        mem[ptr + FIELDS_OFFSET + 1] !== w.llhttp_get_http_major(ptr) ||
        mem[ptr + FIELDS_OFFSET + 2] !== w.llhttp_get_http_minor(ptr)
      ) {
        return -1;
      }
    }
    return FIELDS_OFFSET;
  } finally {
    current = prev;
    w.llhttp_free(ptr);
  }
}

/** Whether the parser reads the method and version from wasm memory (see {@link fieldsOffset}), after the first parser is made. */
export function llhttpFieldsInMemory(): boolean {
  ensureWasm();
  return fieldsOffset >= 0;
}

function ensureScratch(size: number): void {
  if (size <= scratchSize) return;
  const w = wasm!;
  if (scratchPtr !== 0) w.free(scratchPtr);
  scratchSize = Math.max(size, 16 * 1024);
  scratchPtr = w.malloc(scratchSize);
  if (scratchPtr === 0) throw new Error("Cannot parse HTTP: llhttp could not allocate its input buffer");
}

function readCString(ptr: number): string {
  if (ptr === 0) return "";
  const mem = heap();
  let end = ptr;
  while (end < mem.length && mem[end] !== 0) end++;
  let out = "";
  for (let i = ptr; i < end; i++) out += String.fromCharCode(mem[i]!);
  return out;
}

/** Whether the SIMD build of llhttp was loaded (after the first parser is made). */
export function llhttpUsesSimd(): boolean {
  ensureWasm();
  return simdUsed;
}

/**
 * One llhttp parser. Not reentrant: a handler must not call `execute` on any
 * parser from inside a callback.
 *
 * @example
 * ```ts
 * const p = new LlhttpParser("request", handler);
 * const r = p.execute(bytes);
 * if (r === ExecuteResult.ERROR) console.log(p.errorName, p.errorReason, p.errorOffset);
 * p.destroy();
 * ```
 */
export class LlhttpParser {
  readonly handler: LlhttpHandler;
  readonly kind: ParserKind;
  #ptr: number;
  /** Offset in the last chunk where the parser stopped (pause, upgrade or error). */
  stoppedAt = 0;

  constructor(kind: ParserKind, handler: LlhttpHandler) {
    const w = ensureWasm();
    this.kind = kind;
    this.handler = handler;
    this.#ptr = w.llhttp_alloc(kind === "request" ? 1 : 2);
    if (this.#ptr === 0) throw new Error("Cannot create an HTTP parser: llhttp could not allocate it");
    leaked.register(this, this.#ptr, this);
  }

  /**
   * Parses `chunk[from..]`. Returns {@link ExecuteResult}; on PAUSED, UPGRADE
   * and ERROR, `stoppedAt` is the offset in `chunk` where parsing stopped.
   */
  execute(chunk: Uint8Array, from = 0): ExecuteResult {
    const w = wasm!;
    const total = chunk.length;
    let offset = from;
    while (offset < total) {
      const len = Math.min(total - offset, SCRATCH_MAX);
      ensureScratch(len);
      heap().set(offset === 0 && len === total ? chunk : chunk.subarray(offset, offset + len), scratchPtr);
      const prev = current;
      const prevBase = currentBase;
      current = this;
      currentBase = offset;
      let ret: number;
      try {
        ret = w.llhttp_execute(this.#ptr, scratchPtr, len);
      } finally {
        current = prev;
        currentBase = prevBase;
      }
      if (ret !== 0) {
        this.stoppedAt = w.llhttp_get_error_pos(this.#ptr) - scratchPtr + offset;
        if (ret === ERROR.PAUSED) return ExecuteResult.PAUSED;
        if (ret === ERROR.PAUSED_UPGRADE || ret === ERROR.PAUSED_H2_UPGRADE) return ExecuteResult.UPGRADE;
        return ExecuteResult.ERROR;
      }
      offset += len;
    }
    this.stoppedAt = total;
    return ExecuteResult.OK;
  }

  /** Tells the parser the input ended; returns ERROR if a message was cut short. */
  finish(): ExecuteResult {
    const prev = current;
    current = this;
    let ret: number;
    try {
      ret = wasm!.llhttp_finish(this.#ptr);
    } finally {
      current = prev;
    }
    return ret === 0 ? ExecuteResult.OK : ExecuteResult.ERROR;
  }

  /** Continues after a callback returned {@link CB_PAUSE}. */
  resume(): void {
    wasm!.llhttp_resume(this.#ptr);
  }

  /** Continues parsing HTTP after an Upgrade message that was not accepted. */
  resumeAfterUpgrade(): void {
    wasm!.llhttp_resume_after_upgrade(this.#ptr);
  }

  /** Forgets the current message and any error. */
  reset(): void {
    wasm!.llhttp_reset(this.#ptr);
  }

  get method(): string {
    const n = fieldsOffset >= 0 ? heap()[this.#ptr + fieldsOffset]! : wasm!.llhttp_get_method(this.#ptr);
    return METHOD_NAMES[n] ?? "UNKNOWN";
  }
  get httpMajor(): number {
    return fieldsOffset >= 0 ? heap()[this.#ptr + fieldsOffset + 1]! : wasm!.llhttp_get_http_major(this.#ptr);
  }
  get httpMinor(): number {
    return fieldsOffset >= 0 ? heap()[this.#ptr + fieldsOffset + 2]! : wasm!.llhttp_get_http_minor(this.#ptr);
  }
  get statusCode(): number {
    return wasm!.llhttp_get_status_code(this.#ptr);
  }
  get shouldKeepAlive(): boolean {
    return wasm!.llhttp_should_keep_alive(this.#ptr) === 1;
  }
  /** True if the current message's body ends only when the connection closes. */
  get needsEof(): boolean {
    return wasm!.llhttp_message_needs_eof(this.#ptr) === 1;
  }
  /** llhttp's errno (0 if none). */
  get errorCode(): number {
    return wasm!.llhttp_get_errno(this.#ptr);
  }
  /** llhttp's name for the errno, such as `INVALID_HEADER_TOKEN`. */
  get errorName(): string {
    return ERROR_NAMES[this.errorCode] ?? `UNKNOWN_${this.errorCode}`;
  }
  /** llhttp's human reason, such as "Invalid header value char". */
  get errorReason(): string {
    return readCString(wasm!.llhttp_get_error_reason(this.#ptr));
  }

  /** Frees the parser's wasm memory. The parser cannot be used afterwards. */
  destroy(): void {
    if (this.#ptr !== 0) {
      leaked.unregister(this);
      wasm!.llhttp_free(this.#ptr);
      this.#ptr = 0;
    }
  }
}

/** llhttp's error numbers, by name, for tests and error mapping. */
export const LLHTTP_ERRORS: Readonly<Record<string, number>> = ERROR as Record<string, number>;
