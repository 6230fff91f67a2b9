/**
 * The default {@link DeflateCodec}, on `node:zlib` (present in Node and Bun).
 * Kept out of the engine's imports: pass it in through the engine options.
 *
 * ## Synchronous zlib with a persistent context
 *
 * The engine is synchronous, and context takeover needs one deflate and one
 * inflate stream that live as long as the connection. Node's public sync
 * API (`deflateRawSync`) is one-shot, and the legacy `_processChunk(chunk,
 * flush)` without a callback, which `deflateRawSync` uses inside, closes the
 * stream's handle after one call (measured on Node 20: the second call
 * fails with "Cannot read properties of null (reading 'writeSync')"). So
 * this codec does what that function does, minus the close: it calls the
 * native handle's `writeSync(flush, in, inOff, inLen, out, outOff, outLen)`
 * in a loop and reads the two counters Node leaves in `_writeState`
 * (`[availOutAfter, availInAfter]`), with `Z_SYNC_FLUSH` so that every
 * message ends on a byte boundary with an empty stored block `00 00 ff ff`,
 * which RFC 7692 §7.2.1 removes before sending and §7.2.2 appends before
 * inflating. A zlib error destroys the stream synchronously (Node's
 * `zlibOnError`), which the loop checks after each call.
 *
 * When those internals are missing or fail a one-time self-test (a runtime
 * whose `node:zlib` is built differently), the codec falls back to the public one-shot functions,
 * which stay correct with context takeover by passing the last window of
 * plaintext as a preset `dictionary` (the peer's LZ77 window holds exactly
 * those bytes): `deflateRawSync(data, { dictionary, finishFlush:
 * Z_SYNC_FLUSH })` and `inflateRawSync(data + tail, { dictionary,
 * maxOutputLength })`. It is slower (each message re-primes a window) and
 * inflates a message once its last frame is in, but it behaves the same.
 *
 * ## Window bits 8
 *
 * zlib refuses raw deflate with `windowBits` 8 (since 1.2.9 `deflateInit2`
 * returns Z_STREAM_ERROR: its 256-byte window was broken), so like ws we
 * compress with 9 when 8 is negotiated. That stays within the promise:
 * zlib never emits a match distance above `w_size - MIN_LOOKAHEAD` (512 -
 * 262 = 250 bytes for 9 bits), less than the 256 bytes an 8-bit window
 * holds. Inflating with 8 is supported and used as negotiated.
 *
 * @module
 */
import { Buffer, kMaxLength } from "node:buffer";
import * as zlib from "node:zlib";
import { MAX_WINDOW_BITS, type DeflateCodec, type PerMessageDeflateParams } from "./deflate";

/** RFC 7692 §7.2.1: the tail of a sync-flushed block, removed on the wire. */
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const EMPTY = Buffer.alloc(0);
const Z_SYNC_FLUSH = zlib.constants.Z_SYNC_FLUSH;

/** Tuning passed to zlib. */
export interface ZlibDeflateCodecOptions {
  /**
   * Compression level 0..9 (or -1 for zlib's default, 6).
   * @default -1
   */
  level?: number;
  /**
   * zlib memLevel 1..9: memory for the compressor's internal state.
   * @default 8
   */
  memLevel?: number;
  /**
   * zlib strategy (`zlib.constants.Z_DEFAULT_STRATEGY`, `Z_FILTERED`, ...).
   * @default Z_DEFAULT_STRATEGY
   */
  strategy?: number;
  /**
   * Size of the output chunks zlib writes into.
   * @default 16384
   */
  chunkSize?: number;
  /**
   * Use the one-shot fallback even when the streaming internals exist
   * (for tests, and to compare).
   * @default false
   */
  forceFallback?: boolean;
}

interface ZlibHandle {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  reset(): void;
}

interface ZlibStreamInternals {
  _handle: ZlibHandle | null;
  _writeState: Uint32Array;
  destroyed: boolean;
  errored?: Error | null;
  on(event: "error", listener: (error: Error) => void): unknown;
  close(): void;
}

/** Thrown for data that does not inflate (or a zlib failure). */
class ZlibCodecError extends Error {
  override name = "ZlibCodecError";
}

/** One direction over a persistent zlib stream, driven synchronously. */
class StreamingZlib {
  #stream: ZlibStreamInternals;
  #handle: ZlibHandle;
  #state: Uint32Array;
  #out: Buffer;
  #chunkSize: number;
  /** Inflate only: the stream reached a final block (BFINAL) and must be reset. */
  ended = false;

  constructor(stream: ZlibStreamInternals, chunkSize: number) {
    this.#stream = stream;
    this.#handle = stream._handle!;
    this.#state = stream._writeState;
    this.#chunkSize = chunkSize;
    this.#out = Buffer.allocUnsafe(chunkSize);
    // zlibOnError destroys the stream and emits 'error' later; keep that from
    // becoming an uncaught exception: the failure is read synchronously.
    stream.on("error", () => {});
  }

  static available(stream: unknown): stream is ZlibStreamInternals {
    const s = stream as Partial<ZlibStreamInternals>;
    return (
      s._handle !== null &&
      typeof s._handle === "object" &&
      typeof s._handle.writeSync === "function" &&
      typeof s._handle.reset === "function" &&
      s._writeState instanceof Uint32Array
    );
  }

  /**
   * Runs `input` through zlib with `flush`, appending output to `pieces`.
   * Returns the new output total, or -1 once it exceeds `maxOutput`.
   */
  process(input: Uint8Array, flush: number, pieces: Buffer[], total: number, maxOutput: number): number {
    const handle = this.#handle;
    const state = this.#state;
    let inOff = 0;
    let inLen = input.length;
    for (;;) {
      let out = this.#out;
      // Room for one byte past the limit at most: zlib stops there, before
      // it reads further input, so that too much output is found at the same
      // place in the input (before any corruption that follows it) however
      // the input was split.
      const room = maxOutput - total + 1 < out.length ? maxOutput - total + 1 : out.length;
      handle.writeSync(flush, input, inOff, inLen, out, 0, room);
      if (this.#stream.destroyed) {
        const cause = this.#stream.errored ?? undefined;
        throw new ZlibCodecError(cause?.message ?? "zlib failed", { cause });
      }
      const availOut = state[0]!;
      const availIn = state[1]!;
      const have = room - availOut;
      if (have > 0) {
        total += have;
        if (total > maxOutput) return -1;
        if (availOut === 0) {
          pieces.push(out); // full: hand it over and write into a fresh one
          this.#out = out = Buffer.allocUnsafe(this.#chunkSize);
        } else {
          const copy = Buffer.allocUnsafe(have);
          out.copy(copy, 0, 0, have);
          pieces.push(copy);
        }
      }
      inOff += inLen - availIn;
      inLen = availIn;
      if (availOut !== 0) {
        // zlib stopped with room to spare: all input consumed, or (inflate)
        // the stream ended with a final block and the rest is left over.
        if (inLen > 0) this.ended = true;
        return total;
      }
    }
  }

  reset(): void {
    this.#handle.reset();
    this.ended = false;
  }

  close(): void {
    this.#stream.close();
  }
}

let streamingVerdict: boolean | null = null;

/**
 * Checks once per process that the streaming internals behave as expected:
 * two messages through one deflate stream (the second must reuse the first's
 * context) and back through one inflate stream. Any surprise selects the
 * fallback.
 */
function streamingWorks(): boolean {
  if (streamingVerdict !== null) return streamingVerdict;
  let verdict = false;
  try {
    const d = zlib.createDeflateRaw({ windowBits: 15 });
    const i = zlib.createInflateRaw({ windowBits: 15 });
    if (StreamingZlib.available(d) && StreamingZlib.available(i)) {
      const deflate = new StreamingZlib(d, 256);
      const inflate = new StreamingZlib(i, 256);
      const message = Buffer.from("typhoon permessage-deflate self-test, typhoon permessage-deflate");
      const run = (engine: StreamingZlib, input: Uint8Array): Buffer => {
        const pieces: Buffer[] = [];
        return join(pieces, engine.process(input, Z_SYNC_FLUSH, pieces, 0, Infinity));
      };
      const first = run(deflate, message);
      const second = run(deflate, message);
      verdict =
        endsWithTail(first) &&
        endsWithTail(second) &&
        second.length < first.length &&
        run(inflate, first).equals(message) &&
        run(inflate, second).equals(message);
      deflate.close();
      inflate.close();
    } else {
      d.close();
      i.close();
    }
  } catch {
    verdict = false;
  }
  return (streamingVerdict = verdict);
}

function join(pieces: Buffer[], total: number): Buffer {
  if (pieces.length === 1) return pieces[0]!;
  if (pieces.length === 0) return Buffer.allocUnsafe(0);
  return Buffer.concat(pieces, total);
}

function endsWithTail(data: Uint8Array): boolean {
  const n = data.length;
  return n >= 4 && data[n - 4] === 0 && data[n - 3] === 0 && data[n - 2] === 0xff && data[n - 1] === 0xff;
}

function validateCodecOptions(options: ZlibDeflateCodecOptions): void {
  const { level, memLevel, strategy, chunkSize } = options;
  if (level !== undefined && (!Number.isInteger(level) || level < -1 || level > 9)) {
    throw new RangeError(`level must be an integer in -1..9, got ${String(level)}`);
  }
  if (memLevel !== undefined && (!Number.isInteger(memLevel) || memLevel < 1 || memLevel > 9)) {
    throw new RangeError(`memLevel must be an integer in 1..9, got ${String(memLevel)}`);
  }
  if (strategy !== undefined && (!Number.isInteger(strategy) || strategy < 0 || strategy > 4)) {
    throw new RangeError(`strategy must be an integer in 0..4, got ${String(strategy)}`);
  }
  if (chunkSize !== undefined && (!Number.isInteger(chunkSize) || chunkSize < 64)) {
    throw new RangeError(`chunkSize must be an integer >= 64, got ${String(chunkSize)}`);
  }
}

/** `ZlibDeflateCodec`'s bits: our deflate window bits (low 4 bits), the peer's above them, flags. */
const WINDOW_BITS_MASK = 0xf;
const INFLATE_BITS_SHIFT = 4;
const OWN_NO_CONTEXT_TAKEOVER = 1 << 8;
const PEER_NO_CONTEXT_TAKEOVER = 1 << 9;
const STATE_FALLBACK = 1 << 10;
const STATE_CLOSED = 1 << 11;

/** What the one-shot fallback keeps between calls. */
interface FallbackState {
  /** Pieces of the message being inflated. */
  pending: Buffer[] | null;
  pendingLength: number;
  /** The window of what was sent and received, as the next call's dictionary. */
  sentHistory: Buffer;
  receivedHistory: Buffer;
}

/** Keeps the last `size` bytes of plaintext: the peer's LZ77 window. */
function slide(history: Buffer, data: Uint8Array, size: number): Buffer {
  if (data.length >= size) return Buffer.from(data.subarray(data.length - size));
  const keep = Math.min(history.length, size - data.length);
  const next = Buffer.allocUnsafe(keep + data.length);
  history.copy(next, 0, history.length - keep);
  next.set(data, keep);
  return next;
}

/**
 * A {@link DeflateCodec} on `node:zlib`, for one side (`role`) of a
 * negotiated configuration. See the module notes for how it stays
 * synchronous and for the fallback.
 *
 * @example
 * ```ts
 * const negotiated = negotiateDeflate(parseExtensions(offerHeader));
 * const conn = new WebSocketConnection({
 *   role: "server",
 *   perMessageDeflate: negotiated && { codec: new ZlibDeflateCodec(negotiated.params, "server") },
 * });
 * ```
 */
export class ZlibDeflateCodec implements DeflateCodec {
  /**
   * The negotiated parameters and the codec's state in one number (an idle
   * connection keeps its codec, so it is kept small): our deflate window
   * bits in bits 0-3, the peer's in bits 4-7, then the flags
   * `OWN_NO_CONTEXT_TAKEOVER`, `PEER_NO_CONTEXT_TAKEOVER`, `STATE_FALLBACK`
   * and `STATE_CLOSED`.
   */
  #bits: number;
  readonly #options: ZlibDeflateCodecOptions;
  #deflate: StreamingZlib | null = null;
  #inflate: StreamingZlib | null = null;
  /** The one-shot fallback's state, made when the fallback is first used. */
  #fb: FallbackState | null = null;

  constructor(params: PerMessageDeflateParams, role: "server" | "client", options: ZlibDeflateCodecOptions = {}) {
    if (role !== "server" && role !== "client") throw new TypeError(`role must be "server" or "client", got ${String(role)}`);
    validateCodecOptions(options);
    const isServer = role === "server";
    const own = isServer ? params.serverMaxWindowBits : params.clientMaxWindowBits;
    const peer = isServer ? params.clientMaxWindowBits : params.serverMaxWindowBits;
    for (const bits of [own, peer]) {
      if (!Number.isInteger(bits) || bits < 8 || bits > MAX_WINDOW_BITS) throw new RangeError(`window bits must be in 8..15, got ${bits}`);
    }
    const ownNoContextTakeover = isServer ? params.serverNoContextTakeover : params.clientNoContextTakeover;
    const peerNoContextTakeover = isServer ? params.clientNoContextTakeover : params.serverNoContextTakeover;
    // zlib has no raw deflate with an 8-bit window; 9 stays within 8's
    // distances (see the module notes).
    this.#bits =
      Math.max(own, 9) |
      (peer << INFLATE_BITS_SHIFT) |
      (ownNoContextTakeover ? OWN_NO_CONTEXT_TAKEOVER : 0) |
      (peerNoContextTakeover ? PEER_NO_CONTEXT_TAKEOVER : 0) |
      (options.forceFallback === true ? STATE_FALLBACK : 0);
    this.#options = options;
  }

  get #deflateBits(): number {
    return this.#bits & WINDOW_BITS_MASK;
  }
  get #inflateBits(): number {
    return (this.#bits >> INFLATE_BITS_SHIFT) & WINDOW_BITS_MASK;
  }
  get #ownNoContextTakeover(): boolean {
    return (this.#bits & OWN_NO_CONTEXT_TAKEOVER) !== 0;
  }
  get #peerNoContextTakeover(): boolean {
    return (this.#bits & PEER_NO_CONTEXT_TAKEOVER) !== 0;
  }
  get #fallback(): boolean {
    return (this.#bits & STATE_FALLBACK) !== 0;
  }
  get #closed(): boolean {
    return (this.#bits & STATE_CLOSED) !== 0;
  }
  #fallbackState(): FallbackState {
    return (this.#fb ??= { pending: null, pendingLength: 0, sentHistory: EMPTY, receivedHistory: EMPTY });
  }

  /** True when the one-shot fallback is in use. */
  get usesFallback(): boolean {
    return this.#fallback;
  }

  #deflateOptions(): zlib.ZlibOptions {
    const o = this.#options;
    return {
      windowBits: this.#deflateBits,
      level: o.level ?? zlib.constants.Z_DEFAULT_COMPRESSION,
      memLevel: o.memLevel ?? 8,
      strategy: o.strategy ?? zlib.constants.Z_DEFAULT_STRATEGY,
      chunkSize: o.chunkSize ?? 16 * 1024,
    };
  }

  #streaming(kind: "deflate" | "inflate"): StreamingZlib | null {
    if (this.#fallback) return null;
    if (!streamingWorks()) {
      this.#bits |= STATE_FALLBACK;
      return null;
    }
    const stream =
      kind === "deflate"
        ? zlib.createDeflateRaw(this.#deflateOptions())
        : zlib.createInflateRaw({ windowBits: this.#inflateBits, chunkSize: this.#options.chunkSize ?? 16 * 1024 });
    if (!StreamingZlib.available(stream)) {
      stream.close();
      this.#bits |= STATE_FALLBACK;
      return null;
    }
    return new StreamingZlib(stream, this.#options.chunkSize ?? 16 * 1024);
  }

  compress(data: Uint8Array): Uint8Array {
    if (this.#closed) throw new Error("Cannot compress: the codec is closed");
    const engine = this.#deflate ?? (this.#deflate = this.#streaming("deflate"));
    let out: Buffer;
    if (engine !== null) {
      const pieces: Buffer[] = [];
      const total = engine.process(data, Z_SYNC_FLUSH, pieces, 0, Infinity);
      out = join(pieces, total);
      if (this.#ownNoContextTakeover) engine.reset();
    } else {
      const fb = this.#fallbackState();
      const opts: zlib.ZlibOptions = { ...this.#deflateOptions(), finishFlush: Z_SYNC_FLUSH };
      if (!this.#ownNoContextTakeover && fb.sentHistory.length > 0) opts.dictionary = fb.sentHistory;
      out = zlib.deflateRawSync(data, opts);
      if (!this.#ownNoContextTakeover) fb.sentHistory = slide(fb.sentHistory, data, 1 << this.#deflateBits);
    }
    // RFC 7692 §7.2.1: "Remove 4 octets (that are 0x00 0x00 0xff 0xff) from the tail end."
    const payload = endsWithTail(out) ? out.subarray(0, out.length - 4) : out;
    // zlib emits nothing for an empty message right after a flush; §7.2.3.6
    // sends an empty message as the single byte 0x00 (an empty stored block
    // once the tail is appended).
    return payload.length === 0 ? Buffer.from([0x00]) : payload;
  }

  decompress(data: Uint8Array, fin: boolean, maxOutput: number): Uint8Array | null {
    if (this.#closed) throw new Error("Cannot decompress: the codec is closed");
    const engine = this.#inflate ?? (this.#inflate = this.#streaming("inflate"));
    if (engine !== null) {
      const pieces: Buffer[] = [];
      let total = 0;
      if (data.length > 0 && !engine.ended) {
        total = engine.process(data, Z_SYNC_FLUSH, pieces, total, maxOutput);
        if (total < 0) return null;
      }
      if (fin) {
        // RFC 7692 §7.2.2: "Append 4 octets of 0x00 0x00 0xff 0xff to the tail end
        // of the payload of the message" before decompressing.
        if (!engine.ended) {
          total = engine.process(TAIL, Z_SYNC_FLUSH, pieces, total, maxOutput);
          if (total < 0) return null;
        }
        // A final block (BFINAL) ends the peer's stream: it starts afresh next time.
        if (this.#peerNoContextTakeover || engine.ended) engine.reset();
      }
      return join(pieces, total);
    }
    // Fallback: collect the message, inflate it whole at the end.
    const fb = this.#fallbackState();
    if (data.length > 0) {
      (fb.pending ??= []).push(Buffer.from(data));
      fb.pendingLength += data.length;
    }
    if (!fin) return EMPTY;
    const pending = fb.pending ?? [];
    pending.push(TAIL);
    const input = Buffer.concat(pending, fb.pendingLength + 4);
    fb.pending = null;
    fb.pendingLength = 0;
    const opts: zlib.ZlibOptions = {
      windowBits: this.#inflateBits,
      finishFlush: Z_SYNC_FLUSH,
      maxOutputLength: Math.max(1, Math.min(maxOutput + 1, kMaxLength)),
    };
    if (!this.#peerNoContextTakeover && fb.receivedHistory.length > 0) opts.dictionary = fb.receivedHistory;
    let out: Buffer;
    try {
      out = zlib.inflateRawSync(input, opts);
    } catch (error) {
      if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") return null;
      throw new ZlibCodecError((error as Error).message, { cause: error });
    }
    if (out.length > maxOutput) return null;
    if (!this.#peerNoContextTakeover) fb.receivedHistory = slide(fb.receivedHistory, out, 1 << this.#inflateBits);
    return out;
  }

  close(): void {
    if (this.#closed) return;
    this.#bits |= STATE_CLOSED;
    this.#deflate?.close();
    this.#inflate?.close();
    this.#deflate = this.#inflate = null;
    this.#fb = null;
  }
}

/**
 * Factory form of {@link ZlibDeflateCodec}, matching `DeflateCodecFactory`.
 *
 * @example
 * ```ts
 * const codec = createZlibDeflateCodec(params, "client", { level: 1 });
 * ```
 */
export function createZlibDeflateCodec(
  params: PerMessageDeflateParams,
  role: "server" | "client",
  options: ZlibDeflateCodecOptions = {},
): ZlibDeflateCodec {
  return new ZlibDeflateCodec(params, role, options);
}
