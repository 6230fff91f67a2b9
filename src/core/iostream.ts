/**
 * Byte streams over the Transport contract, after Tornado's
 * `tornado.iostream`: {@link IOStream} turns a {@link Connection}'s `data`
 * callbacks into reads that wait for what they need (`readUntil`,
 * `readUntilRegex`, `readBytes`, `readInto`, `readUntilClose`) and writes
 * that wait for the transport to take the bytes. It does no I/O of its own:
 * it only uses the connection it is given, so it runs over Node or Bun
 * sockets and over memory pipes alike.
 *
 * How this works:
 *
 * - What arrives is kept in a chunk list with an offset into the first chunk;
 *   a read takes bytes off the front, as a view of one chunk when it fits in
 *   one (no copy) or joined once when it spans several. Chunks are never
 *   concatenated as they arrive.
 * - One read is pending at a time (a second one throws, as Tornado's
 *   "Already reading"). A read is tried as soon as it starts and again after
 *   every chunk. `readUntil` remembers where its last search stopped (and in
 *   which chunk), so each chunk is searched once, plus the few bytes before it
 *   that a delimiter could start in.
 * - Backpressure: while no read waits for data and the buffer holds at least
 *   `readHighWaterMark` bytes, the connection is paused; it resumes when a
 *   read needs more. A pending read may buffer up to `maxBufferSize` bytes;
 *   beyond that the stream closes with a {@link StreamBufferFullError}
 *   (Tornado: "Reached maximum read buffer size").
 * - The peer's FIN closes the stream, as in Tornado (no half-open streams).
 *   What was buffered can still be read after the close; a read that the
 *   buffer cannot satisfy then rejects with a {@link StreamClosedError}
 *   carrying the cause (`ECONNRESET`, ...), and `readUntilClose` resolves
 *   with the rest.
 * - `close()` ends the connection gracefully (what was written is flushed,
 *   then FIN). Data that arrives after a local close resets the connection,
 *   as the kernel answers data sent to a closed socket.
 *
 * Differences from Tornado: the limit errors ({@link UnsatisfiableReadError},
 * {@link StreamBufferFullError}) reject the read that hit them directly
 * (Tornado wraps them in a `StreamClosedError` whose `real_error` they are);
 * later operations get a `StreamClosedError` with them as `cause`. A close
 * callback set after the stream closed is still called.
 *
 * @module
 */
import { asBuffer, type BytesLike, concatBytes, EMPTY_BYTES, latin1Decode, toBytes } from "./bytes";
import type { Connection, ConnectionHandler, StartTlsOptions } from "./transport";

/** Default `maxBufferSize`: 100 MiB, as Tornado's `max_buffer_size`. */
export const DEFAULT_MAX_BUFFER_SIZE = 100 * 1024 * 1024;
/**
 * Default `readHighWaterMark`: 64 KiB, Tornado's `read_chunk_size` (the most
 * it reads ahead of a read in one go) and Node's socket buffer size.
 */
export const DEFAULT_READ_HIGH_WATER_MARK = 64 * 1024;

/** Options of an {@link IOStream}. */
export interface IOStreamOptions {
  /**
   * The most bytes the stream buffers for a read. A read that needs more
   * (a `readBytes(n)` with a bigger `n`, a line longer than this without
   * `maxBytes`, a `readUntilClose` of more) fails with a
   * {@link StreamBufferFullError} and the stream closes. Tornado: 100 MiB.
   * @default 104857600 (100 MiB)
   */
  maxBufferSize?: number;
  /**
   * The most bytes that may wait in the transport's output: a `write` that
   * would go past it is rejected with a {@link StreamBufferFullError} (the
   * stream stays open), as Tornado's `max_write_buffer_size`.
   * @default Infinity
   */
  maxWriteBufferSize?: number;
  /**
   * Bytes buffered ahead of the reads, above which the connection is paused
   * until a read needs more. Never more than `maxBufferSize`.
   * @default 65536 (64 KiB)
   */
  readHighWaterMark?: number;
}

/** Options of {@link IOStream.readUntil} and {@link IOStream.readUntilRegex}. */
export interface ReadUntilOptions {
  /**
   * The longest result accepted, delimiter or match included. When the
   * delimiter is not found within it, the read rejects with an
   * {@link UnsatisfiableReadError} and the stream closes (Tornado's
   * `max_bytes`).
   * @default Infinity
   */
  maxBytes?: number;
}

/** Options of {@link IOStream.readBytes} and {@link IOStream.readInto}. */
export interface PartialReadOptions {
  /** Resolve as soon as some bytes (at least one) are there, instead of all of them. @default false */
  partial?: boolean;
}

/**
 * The stream is closed: the operation cannot be done. Tornado's
 * `StreamClosedError`; `cause` (Tornado's `real_error`) holds what closed it,
 * if it did not close cleanly (a reset, a limit error, ...).
 *
 * @example
 * ```ts
 * try {
 *   const line = await stream.readUntil("\n");
 * } catch (e) {
 *   if (e instanceof StreamClosedError) console.log("peer gone", e.realError);
 * }
 * ```
 */
export class StreamClosedError extends Error {
  override name = "StreamClosedError";
  /** A stable machine-readable code. */
  readonly code = "ERR_STREAM_CLOSED";

  constructor(message = "Cannot use the stream: it is closed", options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
  }

  /** What closed the stream, if it did not close cleanly (Tornado's `real_error`). */
  get realError(): Error | undefined {
    return this.cause instanceof Error ? this.cause : undefined;
  }
}

/**
 * A read cannot be satisfied within its `maxBytes`: Tornado's
 * `UnsatisfiableReadError`. The stream is closed.
 *
 * @example
 * ```ts
 * await stream.readUntil("\r\n", { maxBytes: 1024 }).catch((e) => {
 *   if (e instanceof UnsatisfiableReadError) console.log("line too long");
 * });
 * ```
 */
export class UnsatisfiableReadError extends Error {
  override name = "UnsatisfiableReadError";
  /** A stable machine-readable code. */
  readonly code = "ERR_UNSATISFIABLE_READ";
}

/**
 * A buffer limit was reached: more than `maxBufferSize` bytes buffered for a
 * read (the stream is closed), or a write beyond `maxWriteBufferSize` (the
 * write is refused, the stream stays open). Tornado's `StreamBufferFullError`.
 *
 * @example
 * ```ts
 * const stream = new IOStream(connection, { maxBufferSize: 1 << 20 });
 * await stream.readUntilClose().catch((e) => {
 *   if (e instanceof StreamBufferFullError) console.log("more than 1 MiB");
 * });
 * ```
 */
export class StreamBufferFullError extends Error {
  override name = "StreamBufferFullError";
  /** A stable machine-readable code. */
  readonly code = "ERR_STREAM_BUFFER_FULL";
}

const enum Read {
  NONE = 0,
  UNTIL = 1,
  REGEX = 2,
  BYTES = 3,
  INTO = 4,
  CLOSE = 5,
}

const RESOLVED: Promise<void> = Promise.resolve();

function limitOption(name: string, value: number | undefined, fallback: number, allowZero: boolean): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value) || value < 0 || (!allowZero && value === 0) || (Number.isFinite(value) && !Number.isInteger(value))) {
    throw new RangeError(`Cannot use ${name} ${String(value)}: it must be a ${allowZero ? "non-negative" : "positive"} integer (Infinity for none)`);
  }
  return value;
}

/**
 * Checks {@link IOStreamOptions} the way the {@link IOStream} constructor
 * does, for drivers that take them before they have a connection: throws a
 * `RangeError` on a bad value.
 *
 * @example
 * ```ts
 * checkIOStreamOptions({ maxBufferSize: 0 }); // throws RangeError
 * ```
 */
export function checkIOStreamOptions(options: IOStreamOptions): void {
  limitOption("maxBufferSize", options.maxBufferSize, DEFAULT_MAX_BUFFER_SIZE, false);
  limitOption("maxWriteBufferSize", options.maxWriteBufferSize, Infinity, false);
  limitOption("readHighWaterMark", options.readHighWaterMark, DEFAULT_READ_HIGH_WATER_MARK, false);
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

function closedError(action: string, cause: Error | undefined): StreamClosedError {
  const reason = cause === undefined ? "" : ` (${cause.message})`;
  return new StreamClosedError(`Cannot ${action}: the stream is closed${reason}`, { cause });
}

/**
 * Tornado's `IOStream`: reads that wait for a delimiter, a regex match, a
 * byte count or the end, and writes that wait for the transport, over any
 * {@link Connection}. The stream becomes the connection's handler.
 *
 * Results may be views over the chunks the transport delivered (no copy);
 * they are not reused by the stream.
 *
 * @example
 * ```ts
 * const stream = new IOStream(connection);
 * await stream.write("HELO example.com\r\n");
 * const reply = await stream.readUntil("\r\n", { maxBytes: 512 });
 * const body = await stream.readBytes(1024);
 * stream.close();
 * ```
 */
export class IOStream {
  readonly #connection: Connection;
  readonly #options: IOStreamOptions;
  /** The largest read buffer allowed (Tornado's `max_buffer_size`). */
  readonly maxBufferSize: number;
  /** The most unflushed output a write may leave (Tornado's `max_write_buffer_size`). */
  readonly maxWriteBufferSize: number;
  /** Buffered bytes above which reading pauses while no read needs more. */
  readonly readHighWaterMark: number;

  // The read buffer: chunks[head] from headOffset, then the rest; size bytes in all.
  #chunks: Buffer[] = [];
  #head = 0;
  #headOffset = 0;
  #size = 0;

  // The pending read (at most one).
  #readKind: Read = Read.NONE;
  #readDelimiter: Buffer = asBuffer(EMPTY_BYTES);
  #readRegex: RegExp | null = null;
  #regexText = "";
  #readMaxBytes = Infinity;
  #readCount = 0;
  #readPartial = false;
  #readTarget: Uint8Array | null = null;
  #readFilled = 0;
  #resolveRead: ((value: never) => void) | null = null;
  #rejectRead: ((error: Error) => void) | null = null;
  /** Where the next delimiter search starts: an offset in the buffer, its chunk, and that chunk's offset. */
  #scanFrom = 0;
  #scanChunk = 0;
  #scanBase = 0;

  #drainWaiters: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  #paused = false;
  #closed = false;
  /** Handed to a TLS connection by startTls; this stream must not be used. */
  #upgraded = false;
  #error: Error | undefined = undefined;
  #closeCallback: (() => void) | null = null;
  #closedPromise: Promise<void> | null = null;
  #resolveClosed: (() => void) | null = null;

  /**
   * Takes over `connection` (sets itself as its handler).
   *
   * @example
   * ```ts
   * const stream = new IOStream(await nodeTransport.connect({ host: "example.com", port: 80 }), { maxBufferSize: 1 << 20 });
   * ```
   */
  constructor(connection: Connection, options: IOStreamOptions = {}) {
    this.maxBufferSize = limitOption("maxBufferSize", options.maxBufferSize, DEFAULT_MAX_BUFFER_SIZE, false);
    this.maxWriteBufferSize = limitOption("maxWriteBufferSize", options.maxWriteBufferSize, Infinity, false);
    this.readHighWaterMark = Math.min(
      limitOption("readHighWaterMark", options.readHighWaterMark, DEFAULT_READ_HIGH_WATER_MARK, false),
      this.maxBufferSize,
    );
    this.#options = { ...options };
    this.#connection = connection;
    if (connection.closed) this.#closed = true;
    connection.setHandler(this.#handlerFor(connection));
  }

  /** The connection under the stream (addresses, `encrypted`, `alpnProtocol`). */
  get connection(): Connection {
    return this.#connection;
  }

  /** True once the stream is closed (Tornado's `closed()`). Buffered bytes may still be read. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Why the stream closed, if it did not close cleanly (Tornado's `error`). */
  get error(): Error | undefined {
    return this.#error;
  }

  /** Bytes received and not yet read. */
  get bufferedLength(): number {
    return this.#size;
  }

  /**
   * True while a read is pending (Tornado's `reading()`).
   *
   * @example
   * ```ts
   * if (!stream.reading()) void stream.readUntil("\n").then(onLine);
   * ```
   */
  reading(): boolean {
    return this.#readKind !== Read.NONE;
  }

  /**
   * True while written bytes are not all flushed to the peer (Tornado's `writing()`).
   *
   * @example
   * ```ts
   * if (!stream.writing()) stream.close();
   * ```
   */
  writing(): boolean {
    return !this.#closed && this.#connection.writableLength > 0;
  }

  // ------------------------------------------------------------------ reads

  /**
   * Reads up to and including `delimiter` (a string is UTF-8). With
   * `maxBytes`, rejects with an {@link UnsatisfiableReadError} (and closes
   * the stream) when the delimiter does not end within that many bytes.
   *
   * @example
   * ```ts
   * const line = await stream.readUntil("\r\n", { maxBytes: 64 * 1024 });
   * ```
   */
  readUntil(delimiter: BytesLike, options: ReadUntilOptions = {}): Promise<Uint8Array> {
    const bytes = asBuffer(toBytes(delimiter));
    if (bytes.byteLength === 0) throw new RangeError("Cannot read until a delimiter: the delimiter is empty");
    const maxBytes = limitOption("maxBytes", options.maxBytes, Infinity, true);
    const promise = this.#startRead<Uint8Array>("read until a delimiter", Read.UNTIL);
    this.#readDelimiter = bytes;
    this.#readMaxBytes = maxBytes;
    this.#scanFrom = 0;
    this.#scanChunk = this.#head;
    this.#scanBase = 0;
    this.#service();
    return promise;
  }

  /**
   * Reads up to the end of the first match of `regex`, searched in the bytes
   * read so far as latin1 text (one character per byte, so write the pattern
   * for bytes: `/\r?\n\r?\n/`). The `g` and `y` flags are ignored. As in
   * Tornado, the whole buffer is searched again after each chunk (a regex
   * cannot resume), so prefer `readUntil` for fixed delimiters. With
   * `maxBytes`, rejects with an {@link UnsatisfiableReadError} (and closes the
   * stream) when no match ends within that many bytes.
   *
   * @example
   * ```ts
   * const head = await stream.readUntilRegex(/\r?\n\r?\n/, { maxBytes: 65536 });
   * ```
   */
  readUntilRegex(regex: RegExp | string, options: ReadUntilOptions = {}): Promise<Uint8Array> {
    const source = typeof regex === "string" ? new RegExp(regex) : new RegExp(regex.source, regex.flags.replace(/[gy]/g, ""));
    const maxBytes = limitOption("maxBytes", options.maxBytes, Infinity, true);
    const promise = this.#startRead<Uint8Array>("read until a regex", Read.REGEX);
    this.#readRegex = source;
    this.#readMaxBytes = maxBytes;
    this.#regexText = this.#size === 0 ? "" : latin1Decode(this.#peek(this.#size));
    this.#service();
    return promise;
  }

  /**
   * Reads `n` bytes; with `partial`, resolves as soon as at least one byte
   * is there (with at most `n`).
   *
   * @example
   * ```ts
   * const header = await stream.readBytes(8);
   * const some = await stream.readBytes(65536, { partial: true });
   * ```
   */
  readBytes(n: number, options: PartialReadOptions = {}): Promise<Uint8Array> {
    if (!(Number.isInteger(n) && n >= 0)) throw new RangeError(`Cannot read ${String(n)} bytes: give a non-negative integer`);
    const promise = this.#startRead<Uint8Array>(`read ${n} bytes`, Read.BYTES);
    this.#readCount = n;
    this.#readPartial = options.partial ?? false;
    this.#service();
    return promise;
  }

  /**
   * Reads into `buffer` until it is full, and resolves with the number of
   * bytes read (its length); with `partial`, resolves as soon as at least
   * one byte is in it. Bytes are copied in as they arrive.
   *
   * @example
   * ```ts
   * const buffer = new Uint8Array(4096);
   * const n = await stream.readInto(buffer, { partial: true });
   * ```
   */
  readInto(buffer: Uint8Array, options: PartialReadOptions = {}): Promise<number> {
    if (!(buffer instanceof Uint8Array)) throw new TypeError("Cannot read into a buffer: give a Uint8Array");
    const promise = this.#startRead<number>("read into a buffer", Read.INTO);
    this.#readTarget = buffer;
    this.#readFilled = 0;
    this.#readPartial = options.partial ?? false;
    this.#service();
    return promise;
  }

  /**
   * Reads everything until the stream closes (by the peer or by an error)
   * and resolves with it. Bounded by `maxBufferSize`.
   *
   * @example
   * ```ts
   * const response = await stream.readUntilClose();
   * ```
   */
  readUntilClose(): Promise<Uint8Array> {
    const promise = this.#startRead<Uint8Array>("read until close", Read.CLOSE);
    this.#service();
    return promise;
  }

  // ----------------------------------------------------------------- writes

  /**
   * Hands `data` (a string is UTF-8) to the transport. Resolves once the
   * transport's unflushed output is below its high-water mark (at once,
   * usually; after a `drain` when the peer is slow), so that awaiting every
   * write keeps memory bounded. Rejects with a {@link StreamClosedError} if
   * the stream is or becomes closed first, and with a
   * {@link StreamBufferFullError} beyond `maxWriteBufferSize`.
   *
   * @example
   * ```ts
   * await stream.write("PING\r\n");
   * ```
   */
  write(data: BytesLike): Promise<void> {
    if (this.#closed) return Promise.reject(closedError("write", this.#upgradedOr(this.#error)));
    const bytes = toBytes(data);
    const connection = this.#connection;
    if (bytes.byteLength > 0 && connection.writableLength + bytes.byteLength > this.maxWriteBufferSize) {
      return Promise.reject(
        new StreamBufferFullError(
          `Cannot write ${bytes.byteLength} bytes: ${connection.writableLength} are waiting already and maxWriteBufferSize is ${this.maxWriteBufferSize}`,
        ),
      );
    }
    if (connection.write(bytes)) return RESOLVED;
    if (!connection.writable || connection.closed) return Promise.reject(closedError("write", this.#error));
    return new Promise((resolve, reject) => this.#drainWaiters.push({ resolve, reject }));
  }

  // ----------------------------------------------------------- the rest

  /**
   * Upgrades the stream to TLS in place (STARTTLS) and resolves with a new
   * stream over the encrypted connection; this one must not be used again
   * (its close callback moves to the new one). Only while nothing is
   * pending: no read, no write waiting, no unread bytes (Tornado's
   * `start_tls`). Rejects if the transport cannot do it, and with the TLS
   * error if the handshake fails (the stream is then closed).
   *
   * @example
   * ```ts
   * await stream.write("220 Ready to start TLS\r\n");
   * const secure = await stream.startTls({ server: { key, cert } });
   * const line = await secure.readUntil("\r\n");
   * ```
   */
  async startTls(options: StartTlsOptions): Promise<IOStream> {
    const connection = this.#connection;
    if (this.#closed) throw closedError("start TLS", this.#upgradedOr(this.#error));
    if (typeof connection.startTls !== "function") {
      throw new Error("Cannot start TLS: the transport's connections do not support STARTTLS");
    }
    if (this.#readKind !== Read.NONE || this.#drainWaiters.length > 0 || this.#size > 0) {
      const what = this.#readKind !== Read.NONE ? "a read is pending" : this.#size > 0 ? `${this.#size} bytes were received and not read` : "a write is waiting";
      throw new Error(`Cannot start TLS: the stream is not idle (${what})`);
    }
    // From here on this stream is done; events from the old connection are ignored.
    this.#upgraded = true;
    this.#closed = true;
    const callback = this.#closeCallback;
    this.#closeCallback = null;
    let secure: Connection;
    try {
      secure = await connection.startTls(options);
    } catch (error) {
      const cause = toError(error);
      this.#error ??= cause;
      if (!connection.closed) connection.destroy(cause);
      this.#finishClose();
      if (callback !== null) queueMicrotask(callback);
      throw cause;
    }
    this.#finishClose();
    const stream = new IOStream(secure, this.#options);
    if (callback !== null) stream.setCloseCallback(callback);
    return stream;
  }

  /**
   * Turns Nagle's algorithm off (`true`) or on (Tornado's `set_nodelay`).
   *
   * @example
   * ```ts
   * stream.setNodelay(true);
   * ```
   */
  setNodelay(value: boolean): void {
    if (!this.#closed) this.#connection.setNoDelay(value);
  }

  /**
   * Calls `callback` once when the stream closes (after pending reads and
   * writes are rejected). Replaces an earlier callback; `null` removes it. If
   * the stream is closed already, it is called soon.
   *
   * @example
   * ```ts
   * stream.setCloseCallback(() => clients.delete(stream));
   * ```
   */
  setCloseCallback(callback: (() => void) | null): void {
    if (this.#upgraded) throw new Error("Cannot set a close callback: the stream was upgraded to TLS, use the new one");
    this.#closeCallback = callback;
    if (callback !== null && this.#closed) {
      this.#closeCallback = null;
      queueMicrotask(callback);
    }
  }

  /**
   * Resolves once the stream is closed (never rejects). Unlike the close
   * callback, any number of callers may wait.
   *
   * @example
   * ```ts
   * await stream.waitClosed();
   * console.log(stream.error);
   * ```
   */
  waitClosed(): Promise<void> {
    if (this.#closed) return RESOLVED;
    this.#closedPromise ??= new Promise<void>((resolve) => {
      this.#resolveClosed = resolve;
    });
    return this.#closedPromise;
  }

  /**
   * Closes the stream: a pending read that the buffer can satisfy resolves
   * (`readUntilClose` with the rest), others reject with a
   * {@link StreamClosedError}, as do writes waiting for the transport. The
   * connection is ended gracefully (what was written is flushed). `error`
   * is recorded as {@link IOStream.error}, the cause of later errors.
   *
   * @example
   * ```ts
   * stream.close();
   * ```
   */
  close(error?: unknown): void {
    if (this.#closed) return;
    if (error !== undefined && error !== null) this.#error ??= toError(error);
    this.#closed = true;
    const connection = this.#connection;
    if (!connection.closed) {
      if (this.#paused) {
        // Let the peer's FIN in, so that the connection can finish closing.
        this.#paused = false;
        connection.resume();
      }
      connection.end();
    }
    this.#finishClose();
  }

  // -------------------------------------------------------------- internals

  #handlerFor(connection: Connection): ConnectionHandler {
    return {
      data: (chunk) => {
        if (this.#upgraded) return;
        if (this.#closed) {
          // Data after a local close: answer as a closed socket does.
          connection.destroy();
          return;
        }
        this.#append(chunk);
      },
      end: () => {
        if (this.#upgraded) return;
        this.close();
      },
      drain: () => {
        if (this.#upgraded) return;
        const waiters = this.#drainWaiters;
        this.#drainWaiters = [];
        for (const waiter of waiters) waiter.resolve();
      },
      close: (error) => {
        if (this.#upgraded) return;
        if (this.#closed) {
          // Writes waiting for a drain that will never come.
          this.#rejectWriters();
          return;
        }
        this.close(error);
      },
    };
  }

  #startRead<T>(action: string, kind: Read): Promise<T> {
    if (this.#readKind !== Read.NONE) throw new Error(`Cannot ${action}: another read is pending (one read at a time)`);
    if (this.#upgraded) return Promise.reject(closedError(action, this.#upgradedOr(undefined)));
    this.#readKind = kind;
    return new Promise<T>((resolve, reject) => {
      this.#resolveRead = resolve as (value: never) => void;
      this.#rejectRead = reject;
    });
  }

  #upgradedOr(cause: Error | undefined): Error | undefined {
    return this.#upgraded ? new Error("the stream was upgraded to TLS, use the stream startTls resolved with") : cause;
  }

  #append(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    const buffer = asBuffer(chunk);
    this.#chunks.push(buffer);
    this.#size += buffer.byteLength;
    if (this.#readKind === Read.REGEX) this.#regexText += latin1Decode(buffer);
    // Tornado checks right after reading, before looking at the pending read.
    if (this.#size > this.maxBufferSize) {
      const error = new StreamBufferFullError(
        `Cannot read more: ${this.#size} bytes are buffered and maxBufferSize is ${this.maxBufferSize}`,
      );
      this.#error ??= error;
      this.#failRead(error);
      this.close(error);
      return;
    }
    this.#service();
  }

  /** Tries the pending read, then pauses or resumes the connection. */
  #service(): void {
    if (this.#readKind !== Read.NONE) this.#tryRead();
    this.#updateFlow();
  }

  #updateFlow(): void {
    if (this.#closed) return;
    const pause = this.#readKind === Read.NONE && this.#size >= this.readHighWaterMark;
    if (pause !== this.#paused) {
      this.#paused = pause;
      if (pause) this.#connection.pause();
      else this.#connection.resume();
    }
  }

  #tryRead(): void {
    switch (this.#readKind) {
      case Read.UNTIL: {
        const delimiter = this.#readDelimiter;
        const position = this.#findDelimiter(delimiter);
        if (position >= 0) {
          const end = position + delimiter.byteLength;
          if (end > this.#readMaxBytes) return this.#unsatisfiable("delimiter", end);
          return this.#finishRead(this.#consume(end));
        }
        if (this.#size > this.#readMaxBytes) return this.#unsatisfiable("delimiter", this.#size);
        break;
      }
      case Read.REGEX: {
        const match = this.#readRegex!.exec(this.#regexText);
        if (match !== null) {
          const end = match.index + match[0].length;
          if (end > this.#readMaxBytes) return this.#unsatisfiable("regex", end);
          this.#regexText = "";
          return this.#finishRead(this.#consume(end));
        }
        if (this.#size > this.#readMaxBytes) return this.#unsatisfiable("regex", this.#size);
        break;
      }
      case Read.BYTES: {
        const n = this.#readCount;
        if (this.#size >= n || (this.#readPartial && this.#size > 0)) return this.#finishRead(this.#consume(Math.min(n, this.#size)));
        break;
      }
      case Read.INTO: {
        const target = this.#readTarget!;
        const take = Math.min(target.byteLength - this.#readFilled, this.#size);
        if (take > 0) {
          this.#copyInto(target, this.#readFilled, take);
          this.#readFilled += take;
        }
        if (this.#readFilled === target.byteLength || (this.#readPartial && this.#readFilled > 0)) {
          const filled = this.#readFilled;
          this.#readTarget = null;
          return this.#finishRead(filled);
        }
        break;
      }
      case Read.CLOSE:
        if (this.#closed) return this.#finishRead(this.#consume(this.#size));
        return;
      case Read.NONE:
        return;
    }
    if (this.#closed) this.#failRead(closedError("read", this.#upgradedOr(this.#error)));
  }

  #unsatisfiable(what: "delimiter" | "regex", size: number): void {
    const error = new UnsatisfiableReadError(
      `Cannot read until a ${what}: ${what === "regex" ? "no match" : "it was not found"} within maxBytes (${this.#readMaxBytes}), ${size} bytes needed`,
    );
    this.#error ??= error;
    this.#failRead(error);
    this.close(error);
  }

  #finishRead(value: Uint8Array | number): void {
    const resolve = this.#resolveRead!;
    this.#clearRead();
    resolve(value as never);
  }

  #failRead(error: Error): void {
    if (this.#readKind === Read.NONE) return;
    const reject = this.#rejectRead!;
    this.#clearRead();
    reject(error);
  }

  #clearRead(): void {
    this.#readKind = Read.NONE;
    this.#resolveRead = null;
    this.#rejectRead = null;
    this.#readRegex = null;
    this.#regexText = "";
    this.#readTarget = null;
  }

  #rejectWriters(): void {
    const waiters = this.#drainWaiters;
    if (waiters.length === 0) return;
    this.#drainWaiters = [];
    const error = closedError("write", this.#upgradedOr(this.#error));
    for (const waiter of waiters) waiter.reject(error);
  }

  /** After `#closed` is set: settle the pending read and writes, then report. */
  #finishClose(): void {
    if (this.#readKind !== Read.NONE) this.#tryRead();
    this.#rejectWriters();
    const resolveClosed = this.#resolveClosed;
    this.#resolveClosed = null;
    resolveClosed?.();
    if (!this.#upgraded) {
      const callback = this.#closeCallback;
      this.#closeCallback = null;
      if (callback !== null) queueMicrotask(callback);
    }
  }

  /**
   * The offset of the first `delimiter` in the buffer, or -1. Starts where the
   * last search of this read left off; matches inside one chunk are found by
   * `indexOf`, matches across chunks by comparing at the few offsets near the
   * end of a chunk where one could start.
   */
  #findDelimiter(delimiter: Buffer): number {
    const length = delimiter.byteLength;
    const chunks = this.#chunks;
    const from = this.#scanFrom;
    let base = this.#scanBase;
    let i = this.#scanChunk;
    for (; i < chunks.length; i++) {
      const chunk = chunks[i]!;
      const offset = i === this.#head ? this.#headOffset : 0;
      const chunkLength = chunk.byteLength - offset;
      if (from < base + chunkLength) {
        const start = Math.max(0, from - base);
        if (chunkLength - start >= length) {
          const found = chunk.indexOf(delimiter, offset + start);
          if (found >= 0) return base + found - offset;
        }
        if (length > 1 && i + 1 < chunks.length) {
          for (let s = Math.max(start, chunkLength - length + 1); s < chunkLength; s++) {
            if (this.#matchesAcross(delimiter, i, offset + s)) return base + s;
          }
        }
      }
      base += chunkLength;
    }
    // Not found: next time, search only where a delimiter could still start.
    const next = Math.max(this.#scanFrom, this.#size - length + 1);
    let chunkIndex = chunks.length - 1;
    let chunkBase = this.#size;
    while (chunkIndex >= this.#head) {
      const chunkLength = chunks[chunkIndex]!.byteLength - (chunkIndex === this.#head ? this.#headOffset : 0);
      chunkBase -= chunkLength;
      if (chunkBase <= next) break;
      chunkIndex--;
    }
    if (chunkIndex < this.#head) {
      chunkIndex = this.#head;
      chunkBase = 0;
    }
    this.#scanFrom = next;
    this.#scanChunk = chunkIndex;
    this.#scanBase = chunkBase;
    return -1;
  }

  /** True if `delimiter` starts at byte `at` of chunk `index` and continues into the next chunks. */
  #matchesAcross(delimiter: Buffer, index: number, at: number): boolean {
    const chunks = this.#chunks;
    let chunk = chunks[index]!;
    let position = at;
    for (let k = 0; k < delimiter.byteLength; k++) {
      while (position >= chunk.byteLength) {
        index++;
        if (index >= chunks.length) return false;
        chunk = chunks[index]!;
        position = 0;
      }
      if (chunk[position] !== delimiter[k]) return false;
      position++;
    }
    return true;
  }

  /** The first `n` buffered bytes, without consuming them. */
  #peek(n: number): Uint8Array {
    const first = this.#chunks[this.#head]!;
    if (first.byteLength - this.#headOffset >= n) return first.subarray(this.#headOffset, this.#headOffset + n);
    const parts: Uint8Array[] = [];
    let left = n;
    for (let i = this.#head; left > 0; i++) {
      const chunk = this.#chunks[i]!;
      const offset = i === this.#head ? this.#headOffset : 0;
      const take = Math.min(left, chunk.byteLength - offset);
      parts.push(chunk.subarray(offset, offset + take));
      left -= take;
    }
    return concatBytes(parts, n);
  }

  /** Takes `n` bytes off the front of the buffer: a view when they lie in one chunk. */
  #consume(n: number): Uint8Array {
    if (n === 0) return EMPTY_BYTES;
    const first = this.#chunks[this.#head]!;
    let result: Uint8Array;
    if (first.byteLength - this.#headOffset >= n) {
      result = first.subarray(this.#headOffset, this.#headOffset + n);
      this.#skip(n);
    } else {
      result = this.#peek(n);
      this.#skip(n);
    }
    return result;
  }

  #copyInto(target: Uint8Array, at: number, n: number): void {
    let written = 0;
    for (let i = this.#head; written < n; i++) {
      const chunk = this.#chunks[i]!;
      const offset = i === this.#head ? this.#headOffset : 0;
      const take = Math.min(n - written, chunk.byteLength - offset);
      target.set(chunk.subarray(offset, offset + take), at + written);
      written += take;
    }
    this.#skip(n);
  }

  /** Drops `n` bytes from the front of the buffer. */
  #skip(n: number): void {
    this.#size -= n;
    let left = n;
    const chunks = this.#chunks;
    while (left > 0) {
      const chunk = chunks[this.#head]!;
      const available = chunk.byteLength - this.#headOffset;
      if (available > left) {
        this.#headOffset += left;
        break;
      }
      left -= available;
      chunks[this.#head] = undefined as unknown as Buffer;
      this.#head++;
      this.#headOffset = 0;
    }
    if (this.#head === chunks.length) {
      this.#chunks = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > chunks.length) {
      this.#chunks = chunks.slice(this.#head);
      this.#head = 0;
    }
    this.#scanFrom = 0;
    this.#scanChunk = this.#head;
    this.#scanBase = 0;
  }
}
