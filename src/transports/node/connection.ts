/**
 * A {@link Connection} over a `node:net` or `node:tls` socket.
 *
 * This is on the hot path of every server, so the socket's events are wired
 * to module-level listener functions shared by all connections (no closure
 * per connection or per chunk). On Node, plain TCP and Unix connections
 * read and write the socket's libuv handle directly ("direct I/O", below);
 * otherwise `data` goes from the socket to the handler's method:
 * `socket.on("data")` -> `handler.data(chunk)`.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { isIP, isIPv6, type Socket } from "node:net";
import * as tls from "node:tls";
import { getSystemErrorName } from "node:util";
import { asBuffer } from "../../core/bytes";
import type { Connection, ConnectionHandler, SocketAddress, StartTlsOptions } from "../../core/transport";

/** What kind of socket a connection wraps; it decides addresses and how `destroy` resets. */
export type NodeSocketKind = "tcp" | "tls" | "unix";

const kConnection = Symbol("typhoon.connection");
const kHandler = Symbol("typhoon.handler");
const CONNECTION_TOKEN = Symbol("NodeConnection");

// NodeConnection's flags.
const WRITABLE = 1;
const CLOSED = 2;
/** pause() was called (and not resume()). */
const PAUSED = 4;
/** startTls was called: the socket belongs to the TLS connection now. */
const UPGRADED = 8;
/** `end` or `close` came before a handler was set; reported by setHandler. */
const PENDING_END = 16;
const PENDING_CLOSE = 32;
/** Direct I/O may be used (the transport's `directIo` option). */
const DIRECT_IO = 64;
/** Direct I/O: the handle reported the end of input or a read error. */
const INPUT_DONE = 128;
/** Direct I/O: a write returned false; `drain` is owed once libuv's queue is empty. */
const NEED_DRAIN = 256;
/** Direct I/O: bytes written through the stream (before direct I/O began) may still be queued there. */
const STREAM_QUEUED = 512;
/** For Unix sockets: we are the accepted (listening) side. */
const ACCEPTED = 1024;

/** A socket carrying back-references to its connection and (without direct I/O) handler, for the shared listeners. */
interface TyphoonSocket extends Socket {
  [kConnection]: NodeConnection;
  [kHandler]: ConnectionHandler;
}

/** Node-internal parts of a socket that the contract needs (see their uses). */
interface SocketInternals {
  _handle?: object | null;
  /** `socket.setTimeout`'s delay (documented), and Node's refresh of that timer on activity (internal). */
  timeout?: number;
  _unrefTimer?: () => void;
  _writableState?: { highWaterMark: number };
  resetAndDestroy?: () => Socket;
  alpnProtocol?: string | false | null;
}

// The listeners below are installed once per socket and shared by every
// connection: `this` is the socket (EventEmitter calls listeners that way).

function onData(this: TyphoonSocket, chunk: Uint8Array): void {
  this[kHandler].data(chunk);
}

let onDirectRead: (this: StreamHandle, buffer: ArrayBuffer | undefined) => unknown;
let onDirectWriteComplete: (this: WriteRequest, status: number) => void;
let onEnd: (this: TyphoonSocket) => void;
let onDrain: (this: TyphoonSocket) => void;
let onError: (this: TyphoonSocket, error: Error) => void;
let onClose: (this: TyphoonSocket) => void;

function ignore(): void {}

// ------------------------------------------------------------ direct I/O
//
// On Node, a plain TCP or Unix connection reads and writes through the
// socket's libuv handle directly, the way `net.Socket` does underneath, but
// without the stream machinery on every chunk: reads go from the handle's
// `onread` to the handler (no `push`, no `'data'` event), and writes go to
// `writeBuffer`/`writeLatin1String` (no Writable queue, no callback per
// write). Measured with wrk on one CPU: a canned-response server answers
// ~13% more requests/s this way than through `socket.on("data")` and
// `socket.write`. Everything else (end of input, errors, `end()`, `close`)
// still goes through the socket, so Node keeps its bookkeeping. It needs
// Node's `stream_wrap` binding (`process.binding`, for the read length and
// whether a write went asynchronous); where that or the handle's methods
// are missing (Bun's node:net, another Node), the stream path is used.
//
// Reads land in one 64 KiB buffer shared by every connection (the handle's
// `useUserBuffer`, which `net.Socket`'s `onread` option uses), and each
// read is copied out into a buffer of its own size before the handler sees
// it. Without it, Node allocates 64 KiB per read and shrinks it to the
// bytes read. Alternating runs: the 32-byte WebSocket echo won 6 of 7
// pairs (medians of the first four 90.7k -> 101k messages/s), the bare
// HTTP server 2 of 2 (62.9k -> 70.9k requests/s), 16 KiB echoes unchanged.
// Those copies came from Node's Buffer pool; copies of their own size
// measured within 2% of them (91.4k against 93.4k, 3 of 4 pairs to the
// pool), and keep no 8 KiB pool block alive for a small chunk a handler
// keeps.
// libuv reads one handle at a time and calls `onread` before the next
// read, so one buffer serves all.

/** The part of a libuv stream handle (`TCP`, `Pipe`) direct I/O uses. */
interface StreamHandle {
  onread: (this: StreamHandle, buffer: ArrayBuffer | undefined) => unknown;
  reading: boolean;
  readonly writeQueueSize: number;
  readStart(): number;
  readStop(): number;
  writeBuffer(req: WriteRequest, data: Uint8Array): number;
  writeLatin1String(req: WriteRequest, data: string): number;
  /** Reads go into `buffer` from now on, and `onread` gets no ArrayBuffer (Node's `onread` option uses it). */
  useUserBuffer?(buffer: Uint8Array): void;
  [kConnection]?: NodeConnection;
}

/** Node's `WriteWrap`: the request object a handle write takes. */
interface WriteRequest {
  /** Node's own requests point at their handle; direct I/O's do not need it (nothing native reads it). */
  handle?: StreamHandle;
  oncomplete: (this: WriteRequest, status: number) => void;
  async: boolean;
  bytes: number;
  buffer: unknown;
  [kConnection]?: NodeConnection;
}

interface StreamWrapBinding {
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kArrayBufferOffset: number;
  kLastWriteWasAsync: number;
  WriteWrap: new () => WriteRequest;
}

function loadStreamWrap(): StreamWrapBinding | null {
  if (typeof process !== "object" || process === null || typeof (process as { binding?: unknown }).binding !== "function") return null;
  if (typeof (globalThis as { Bun?: unknown }).Bun !== "undefined") return null;
  try {
    const binding = (process as unknown as { binding(name: string): Partial<StreamWrapBinding> }).binding("stream_wrap");
    const { streamBaseState, kReadBytesOrError, kArrayBufferOffset, kLastWriteWasAsync, WriteWrap } = binding;
    if (
      !(streamBaseState instanceof Int32Array) ||
      typeof kReadBytesOrError !== "number" ||
      typeof kArrayBufferOffset !== "number" ||
      typeof kLastWriteWasAsync !== "number" ||
      typeof WriteWrap !== "function"
    ) {
      return null;
    }
    return { streamBaseState, kReadBytesOrError, kArrayBufferOffset, kLastWriteWasAsync, WriteWrap };
  } catch {
    return null;
  }
}

/** Loaded on the first connection that tries direct I/O: undefined until then, null if unavailable. */
let streamWrapLoaded: StreamWrapBinding | null | undefined;
/** The binding, once a connection uses direct I/O (only read on direct I/O paths). */
let streamWrap: StreamWrapBinding | null = null;

/** The socket's handle, if direct I/O can drive it. */
function directHandle(socket: Socket): StreamHandle | null {
  const handle = (socket as unknown as SocketInternals)._handle as Partial<StreamHandle> | null | undefined;
  if (
    handle === null ||
    handle === undefined ||
    typeof handle.onread !== "function" ||
    typeof handle.readStart !== "function" ||
    typeof handle.readStop !== "function" ||
    typeof handle.writeBuffer !== "function" ||
    typeof handle.writeLatin1String !== "function" ||
    typeof handle.writeQueueSize !== "number"
  ) {
    return null;
  }
  return handle as StreamHandle;
}

/**
 * The write request for the next direct write. Node binds a request object
 * to libuv only when the write cannot complete at once (it tries the write
 * first and returns without touching the object when everything went out),
 * so one object serves every write that completes at once; a write that
 * goes asynchronous keeps it, and the next write gets a new one.
 */
let spareRequest: WriteRequest | null = null;

/** The buffer every direct read lands in (see above); made with the first direct connection. */
let readBuffer: Buffer | null = null;
const READ_BUFFER_SIZE = 64 * 1024;

function writeRequest(): WriteRequest {
  let req = spareRequest;
  if (req === null) {
    req = new streamWrap!.WriteWrap();
    req.oncomplete = onDirectWriteComplete;
    req.async = false;
    req.bytes = 0;
    req.buffer = null;
    spareRequest = req;
  }
  return req;
}

/** An error for a failed libuv call, as Node makes them (`code` is the libuv name). */
function uvError(status: number, syscall: string): Error {
  let code: string;
  try {
    code = getSystemErrorName(status);
  } catch {
    code = `E${-status}`;
  }
  const error = new Error(`${syscall} ${code}`) as Error & { code: string; errno: number; syscall: string };
  error.code = code;
  error.errno = status;
  error.syscall = syscall;
  return error;
}

type Pem = string | Uint8Array;

/** @internal PEM text or bytes as Node's TLS options take them. */
export function pem(value: Pem): string | Buffer {
  return typeof value === "string" ? value : asBuffer(value);
}

/** @internal One PEM or a list of them, as Node's TLS options take them. */
export function pemList(value: Pem | Pem[] | undefined): string | Buffer | Array<string | Buffer> | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.map(pem) : pem(value);
}

function familyOf(family: string | number | undefined, address: string): SocketAddress["family"] {
  if (family === "IPv6" || family === 6) return "IPv6";
  if (family === "IPv4" || family === 4) return "IPv4";
  return isIPv6(address) ? "IPv6" : "IPv4";
}

/**
 * One connection over a Node socket (TCP, TLS or Unix). Made by
 * {@link NodeTransport}; use it through the {@link Connection} contract.
 *
 * `pause()` stops `data` at once. With direct I/O it stops reading from
 * the kernel at once; on the stream, Node keeps reading into the socket's
 * buffer until its readable high-water mark, then stops. Either way TCP
 * flow control pushes back on the peer. `destroy()` on TCP
 * sends a reset (RST), as the contract says; on TLS and Unix sockets it
 * closes the socket.
 *
 * @example
 * ```ts
 * const connection = await nodeTransport.connect({ host: "127.0.0.1", port: 8080 });
 * connection.setHandler({ data: (chunk) => {}, end() {}, drain() {}, close(error) {} });
 * connection.write(new TextEncoder().encode("GET / HTTP/1.1\r\nhost: x\r\n\r\n"));
 * ```
 */
export class NodeConnection implements Connection {
  readonly #socket: TyphoonSocket;
  readonly #kind: NodeSocketKind;
  /** For Unix sockets: the path of the listening side (which side we are is ACCEPTED). */
  readonly #path: string | undefined;
  #handler: ConnectionHandler | null = null;
  /**
   * The yes/no state, one bit each (WRITABLE, CLOSED, ...): one number
   * instead of eleven fields on every idle connection.
   */
  #flags = WRITABLE;
  #error: Error | undefined = undefined;
  /** Direct I/O: the handle read and written directly, and Node's own `onread` for what is not data. */
  #handle: StreamHandle | null = null;
  #nodeOnRead: StreamHandle["onread"] | null = null;
  /** Direct I/O: writes still in libuv's queue (see NEED_DRAIN). */
  #asyncWrites = 0;
  /** Direct I/O: called once the writes in libuv's queue are done (startTls waits for them). */
  #onWritesDone: (() => void) | null = null;
  /** Direct I/O: the socket's write high-water mark. */
  #highWaterMark = 0;

  static {
    onDirectRead = function (this: StreamHandle, buffer: ArrayBuffer | undefined): unknown {
      const state = streamWrap!.streamBaseState;
      const n = state[streamWrap!.kReadBytesOrError]!;
      const connection = this[kConnection]!;
      if (n > 0) {
        connection.#activity();
        if ((connection.#flags & CLOSED) === 0) {
          let chunk: Buffer;
          if (buffer === undefined) {
            // In the shared read buffer: copied out, as the next read reuses
            // it, into memory of its own (not Node's pool, where a chunk a
            // handler keeps, such as a partial frame, would hold 8 KiB).
            chunk = Buffer.allocUnsafeSlow(n);
            readBuffer!.copy(chunk, 0, 0, n);
          } else {
            chunk = Buffer.from(buffer, state[streamWrap!.kArrayBufferOffset]!, n);
          }
          connection.#handler!.data(chunk);
        }
        return undefined;
      }
      // The end of input or an error: Node's own reader turns them into
      // the socket's 'end' or 'error' and 'close'.
      if (n < 0) connection.#flags |= INPUT_DONE;
      // Nothing is returned: with a user buffer, Node takes a returned value as the next buffer to read into.
      connection.#nodeOnRead!.call(this, buffer);
      return undefined;
    };
    onDirectWriteComplete = function (this: WriteRequest, status: number): void {
      const connection = this[kConnection]!;
      connection.#asyncWrites--;
      if (connection.#asyncWrites === 0 && connection.#onWritesDone !== null) {
        const done = connection.#onWritesDone;
        connection.#onWritesDone = null;
        done();
      }
      // Cancelled by a destroy (ECANCELED) or after close: not a write error.
      if ((connection.#flags & CLOSED) !== 0 || connection.#socket.destroyed) return;
      if (status < 0) {
        connection.destroy(uvError(status, "write"));
        return;
      }
      if ((connection.#flags & NEED_DRAIN) !== 0 && connection.#asyncWrites === 0 && connection.#socket.writableLength === 0) {
        connection.#flags &= ~NEED_DRAIN;
        connection.#handler?.drain();
      }
    };
    onEnd = function (this: TyphoonSocket): void {
      const connection = this[kConnection];
      // Bun's node:net emits `end` after resetAndDestroy(); a destroyed connection reports only `close`.
      if ((connection.#flags & CLOSED) !== 0) return;
      const handler = connection.#handler;
      if (handler === null) connection.#flags |= PENDING_END;
      else handler.end();
    };
    onDrain = function (this: TyphoonSocket): void {
      const connection = this[kConnection];
      if ((connection.#flags & CLOSED) === 0) connection.#handler?.drain();
    };
    onError = function (this: TyphoonSocket, error: Error): void {
      const connection = this[kConnection];
      connection.#flags = (connection.#flags & ~WRITABLE) | CLOSED;
      connection.#error ??= error;
    };
    onClose = function (this: TyphoonSocket): void {
      const connection = this[kConnection];
      connection.#flags = (connection.#flags & ~WRITABLE) | CLOSED;
      const handler = connection.#handler;
      if (handler === null) connection.#flags |= PENDING_CLOSE;
      else handler.close(connection.#error);
    };
  }

  /** @internal Made by {@link NodeTransport}. */
  constructor(token: symbol, socket: Socket, kind: NodeSocketKind, path: string | undefined, accepted: boolean, directIo: boolean) {
    if (token !== CONNECTION_TOKEN) throw new TypeError("Cannot construct a NodeConnection: use NodeTransport");
    if (directIo) this.#flags |= DIRECT_IO;
    const typed = socket as TyphoonSocket;
    typed[kConnection] = this;
    this.#socket = typed;
    this.#kind = kind;
    this.#path = path;
    if (accepted) this.#flags |= ACCEPTED;
    socket.on("end", onEnd);
    socket.on("drain", onDrain);
    socket.on("error", onError);
    socket.on("close", onClose);
    if (socket.destroyed) {
      this.#flags = (this.#flags & ~WRITABLE) | CLOSED;
    }
  }

  // Not cached: a server asks once per connection, and an idle connection
  // keeps no address object (see handleAddress).
  get localAddress(): SocketAddress | null {
    return this.#address(true);
  }

  get remoteAddress(): SocketAddress | null {
    return this.#address(false);
  }

  get encrypted(): boolean {
    return this.#kind === "tls";
  }

  get alpnProtocol(): string | null {
    return (this.#socket as unknown as SocketInternals).alpnProtocol || null;
  }

  get writableLength(): number {
    const handle = this.#handle;
    // While the stream still holds bytes, libuv's queue is the stream's (counted in its writableLength).
    return handle === null || (this.#flags & STREAM_QUEUED) !== 0 ? this.#socket.writableLength : this.#socket.writableLength + handle.writeQueueSize;
  }

  get closed(): boolean {
    return (this.#flags & CLOSED) !== 0;
  }

  get writable(): boolean {
    return (this.#flags & WRITABLE) !== 0;
  }

  /**
   * True when this connection reads and writes its socket's libuv handle
   * directly (see {@link NodeTransportOptions.directIo}); set once a handler
   * is set.
   *
   * @example
   * ```ts
   * connection.setHandler(handler);
   * console.log(connection.directIo); // true on Node for TCP and Unix sockets
   * ```
   */
  get directIo(): boolean {
    return this.#handle !== null;
  }

  /** The underlying `net.Socket` or `tls.TLSSocket`, for what the contract does not cover. */
  get socket(): Socket | tls.TLSSocket {
    return this.#socket;
  }

  setHandler(handler: ConnectionHandler): void {
    const first = this.#handler === null;
    this.#handler = handler;
    // The stream's 'data' listener finds the handler on the socket; direct
    // I/O reads it from here (the socket keeps no extra property).
    const stream = first ? !this.#startDirect() : this.#handle === null;
    if (stream) this.#socket[kHandler] = handler;
    if (first) {
      if (stream) {
        // Node holds what it reads until a 'data' listener exists, so bytes
        // that came before the handler are delivered now, in order.
        this.#socket.on("data", onData);
        if ((this.#flags & PAUSED) === 0) this.#socket.resume();
      }
      if ((this.#flags & (PENDING_END | PENDING_CLOSE)) !== 0) queueMicrotask(() => this.#reportPending());
    }
  }

  write(chunk: Uint8Array): boolean {
    if ((this.#flags & WRITABLE) === 0) return false;
    const handle = this.#handle;
    // Behind bytes still queued in the stream, a direct write would jump the queue.
    if (handle === null || ((this.#flags & STREAM_QUEUED) !== 0 && this.#stillQueued())) return this.#socket.write(chunk);
    const req = writeRequest();
    return this.#afterDirectWrite(req, handle.writeBuffer(req, chunk), handle, chunk);
  }

  writeLatin1(text: string): boolean {
    if ((this.#flags & WRITABLE) === 0) return false;
    const handle = this.#handle;
    if (handle === null || ((this.#flags & STREAM_QUEUED) !== 0 && this.#stillQueued())) return this.#socket.write(text, "latin1");
    const req = writeRequest();
    return this.#afterDirectWrite(req, handle.writeLatin1String(req, text), handle, null);
  }

  /** Direct I/O: traffic refreshes a `socket.setTimeout` idle timer, as Node's own reads and writes do. */
  #activity(): void {
    const socket = this.#socket as unknown as SocketInternals;
    if (socket.timeout) socket._unrefTimer?.();
  }

  /**
   * After a direct write: errors, asynchronous completion, and the
   * high-water mark. `bytes` are kept alive while an asynchronous write
   * still reads them (a string write's leftover was copied by Node).
   */
  #afterDirectWrite(req: WriteRequest, status: number, handle: StreamHandle, bytes: Uint8Array | null): boolean {
    this.#activity();
    if (status !== 0) {
      spareRequest = null;
      this.destroy(uvError(status, "write"));
      return false;
    }
    if (streamWrap!.streamBaseState[streamWrap!.kLastWriteWasAsync] !== 0) {
      spareRequest = null;
      req.async = true;
      req.buffer = bytes;
      req[kConnection] = this;
      this.#asyncWrites++;
    }
    // Nothing left in libuv's queue is below any mark, 0 included (as Node's Writable).
    if (this.#asyncWrites === 0 || handle.writeQueueSize < this.#highWaterMark) return true;
    this.#flags |= NEED_DRAIN;
    return false;
  }

  /** Direct I/O: whether the stream still holds bytes written before direct I/O began (direct writes must wait behind them). */
  #stillQueued(): boolean {
    if (this.#socket.writableLength !== 0) return true;
    this.#flags &= ~STREAM_QUEUED;
    return false;
  }

  /**
   * Switches to direct I/O when the runtime and the socket allow it: a
   * plain TCP or Unix socket with nothing read into the stream yet.
   */
  #startDirect(): boolean {
    if ((this.#flags & DIRECT_IO) === 0 || this.#kind === "tls") return false;
    if (streamWrapLoaded === undefined) streamWrap = streamWrapLoaded = loadStreamWrap();
    if (streamWrapLoaded === null) return false;
    const socket = this.#socket;
    if (socket.destroyed || socket.readableLength !== 0 || socket.readableEnded) return false;
    const handle = directHandle(socket);
    if (handle === null) return false;
    this.#handle = handle;
    if (socket.writableLength !== 0) this.#flags |= STREAM_QUEUED;
    this.#highWaterMark = socket.writableHighWaterMark;
    this.#nodeOnRead = handle.onread;
    handle[kConnection] = this;
    handle.onread = onDirectRead;
    if (typeof handle.useUserBuffer === "function") handle.useUserBuffer((readBuffer ??= Buffer.allocUnsafeSlow(READ_BUFFER_SIZE)));
    // Flowing, so that the end of input (pushed by Node's reader) becomes 'end'.
    socket.resume();
    if ((this.#flags & PAUSED) !== 0) {
      handle.reading = false;
      handle.readStop();
    } else if (!handle.reading) {
      handle.reading = true;
      handle.readStart();
    }
    return true;
  }

  end(): void {
    if ((this.#flags & WRITABLE) === 0) return;
    this.#flags &= ~WRITABLE;
    this.#socket.end();
  }

  destroy(error?: Error): void {
    // After startTls the socket belongs to the TLS connection.
    if ((this.#flags & UPGRADED) !== 0) return;
    if (error !== undefined) this.#error ??= error;
    this.#flags = (this.#flags & ~WRITABLE) | CLOSED;
    const socket = this.#socket;
    if (socket.destroyed) return;
    const internals = socket as unknown as SocketInternals;
    // A reset, as the contract says: RST on TCP drops unsent data at both
    // ends. resetAndDestroy() needs a live TCP handle (not TLS, not a pipe).
    if (this.#kind === "tcp" && internals._handle && typeof internals.resetAndDestroy === "function") {
      internals.resetAndDestroy();
    } else {
      socket.destroy();
    }
  }

  pause(): void {
    if ((this.#flags & UPGRADED) !== 0) return;
    this.#flags |= PAUSED;
    const handle = this.#handle;
    if (handle === null) {
      this.#socket.pause();
    } else if (handle.reading && (this.#flags & CLOSED) === 0) {
      handle.reading = false;
      handle.readStop();
    }
  }

  resume(): void {
    if ((this.#flags & UPGRADED) !== 0) return;
    this.#flags &= ~PAUSED;
    const handle = this.#handle;
    if (handle === null) {
      // Without a handler, resuming would let Node emit 'data' to nobody.
      if (this.#handler !== null) this.#socket.resume();
    } else if (!handle.reading && (this.#flags & (CLOSED | INPUT_DONE)) === 0) {
      handle.reading = true;
      handle.readStart();
    }
  }

  setNoDelay(noDelay: boolean): void {
    // Node ignores it on Unix sockets.
    if ((this.#flags & UPGRADED) === 0) this.#socket.setNoDelay(noDelay);
  }

  /**
   * Upgrades this plain TCP or Unix connection to TLS (STARTTLS). From the
   * call on, this connection reports nothing more to its handler and
   * ignores writes; bytes that arrived and were not delivered yet go to the
   * TLS layer. What was written before is flushed first, in the clear. As
   * server: `new tls.TLSSocket(socket, { isServer: true })`, ready on
   * `secure`; as client: `tls.connect({ socket })`, ready on
   * `secureConnect` (the certificate is checked against `servername`, else
   * `host`, else the address connected to). Resolves with the encrypted
   * connection; rejects with the TLS error (a certificate not trusted, a
   * failed handshake, the peer gone), and the socket is then destroyed.
   *
   * @example
   * ```ts
   * connection.write(new TextEncoder().encode("220 Ready to start TLS\r\n"));
   * const secure = await connection.startTls({ server: { key, cert } });
   * secure.setHandler(handler);
   * ```
   */
  startTls(options: StartTlsOptions): Promise<Connection> {
    if (this.#kind === "tls") return Promise.reject(new Error("Cannot start TLS: the connection is encrypted already"));
    if ((this.#flags & UPGRADED) !== 0) return Promise.reject(new Error("Cannot start TLS: the connection was upgraded already"));
    if ((this.#flags & (CLOSED | WRITABLE)) !== WRITABLE) return Promise.reject(new Error("Cannot start TLS: the connection is closed"));
    if ((options.server === undefined) === (options.client === undefined)) {
      return Promise.reject(new TypeError("Cannot start TLS: give either server or client options"));
    }
    this.#flags = (this.#flags & ~WRITABLE) | UPGRADED | CLOSED;
    const socket = this.#socket;
    // The old connection stops here. Reading stops too: what arrives from
    // now on stays in the socket's buffer, where the TLSSocket picks it up.
    const handle = this.#handle;
    if (handle !== null) {
      // Node's reader again, for the TLS layer.
      handle.onread = this.#nodeOnRead!;
      delete handle[kConnection];
      this.#handle = null;
      if (handle.reading) {
        handle.reading = false;
        handle.readStop();
      }
    }
    socket.pause();
    socket.removeListener("data", onData);
    socket.removeListener("end", onEnd);
    socket.removeListener("drain", onDrain);
    socket.removeListener("error", onError);
    socket.removeListener("close", onClose);
    socket.on("error", ignore);
    const path = this.#path;
    const accepted = (this.#flags & ACCEPTED) !== 0;
    // Direct writes still in libuv's queue go out in the clear before the TLS layer takes the handle.
    const written = this.#asyncWrites === 0 ? Promise.resolve() : new Promise<void>((resolve) => (this.#onWritesDone = resolve));
    return written.then(() => flushed(socket)).then(() => upgradeSocket(socket, options, path, accepted));
  }

  #reportPending(): void {
    const handler = this.#handler!;
    if ((this.#flags & PENDING_END) !== 0) {
      this.#flags &= ~PENDING_END;
      handler.end();
    }
    if ((this.#flags & PENDING_CLOSE) !== 0) {
      this.#flags &= ~PENDING_CLOSE;
      handler.close(this.#error);
    }
  }

  #address(local: boolean): SocketAddress | null {
    const socket = this.#socket;
    if (this.#path !== undefined) {
      // The listening side of a Unix socket has the path; the connecting side is unnamed.
      const named = local === ((this.#flags & ACCEPTED) !== 0);
      return { family: "unix", address: named ? (this.#path ?? "") : "", port: 0 };
    }
    if (this.#kind === "tcp") {
      const named = handleAddress(socket, local);
      if (named !== null) return named;
    }
    const address = local ? socket.localAddress : socket.remoteAddress;
    const port = local ? socket.localPort : socket.remotePort;
    if (address === undefined || port === undefined) return null;
    const family = local ? (socket as Socket & { localFamily?: string }).localFamily : socket.remoteFamily;
    return { family: familyOf(family, address), address, port };
  }
}

/** What a TCP handle's `getpeername`/`getsockname` fill in (Node's `TCPWrap`). */
interface HandleAddress {
  address?: string;
  family?: string | number;
  port?: number;
}

/**
 * A TCP socket's address, asked of its handle: `socket.remoteAddress` and
 * its kin cache an object with two strings on the socket (`_peername`),
 * which an open connection would carry for its whole life after one
 * question. Null where the handle has no such method (Bun's node:net) or
 * the call fails; the caller then asks the socket.
 */
function handleAddress(socket: Socket, local: boolean): SocketAddress | null {
  const handle = (socket as unknown as SocketInternals)._handle as
    | { getpeername?: (out: HandleAddress) => number; getsockname?: (out: HandleAddress) => number }
    | null
    | undefined;
  const get = local ? handle?.getsockname : handle?.getpeername;
  if (typeof get !== "function") return null;
  const out: HandleAddress = {};
  if (get.call(handle, out) !== 0 || typeof out.address !== "string" || typeof out.port !== "number") return null;
  return { family: familyOf(out.family, out.address), address: out.address, port: out.port };
}

/** Resolves once everything written to `socket` has been handed to the kernel. */
function flushed(socket: Socket): Promise<void> {
  if (socket.writableLength === 0) return Promise.resolve();
  // Writes complete in order, so the callback of an empty write comes after all of them.
  return new Promise((resolve) => socket.write(new Uint8Array(0), () => resolve()));
}

/** Runs the TLS handshake over a connected socket and wraps the result. */
function upgradeSocket(socket: Socket, options: StartTlsOptions, path: string | undefined, accepted: boolean): Promise<NodeConnection> {
  if (socket.destroyed) return Promise.reject(new Error("Cannot start TLS: the connection closed before the handshake"));
  const highWaterMark = socket.writableHighWaterMark;
  let secure: tls.TLSSocket;
  let readyEvent: string;
  try {
    if (options.server !== undefined) {
      const settings = options.server;
      const contextOptions: tls.SecureContextOptions = { key: pem(settings.key), cert: pem(settings.cert) };
      const ca = pemList(settings.ca);
      if (ca !== undefined) contextOptions.ca = ca;
      if (settings.passphrase !== undefined) contextOptions.passphrase = settings.passphrase;
      const socketOptions: tls.TLSSocketOptions = { isServer: true, secureContext: tls.createSecureContext(contextOptions) };
      if (settings.alpnProtocols !== undefined) socketOptions.ALPNProtocols = settings.alpnProtocols;
      secure = new tls.TLSSocket(socket, socketOptions);
      readyEvent = "secure";
    } else {
      const settings = options.client!;
      // Node passes highWaterMark on to the TLSSocket; its types do not list it.
      const connectOptions: tls.ConnectionOptions & { highWaterMark?: number } = {
        socket,
        highWaterMark,
        rejectUnauthorized: settings.rejectUnauthorized ?? true,
      };
      const host = settings.host;
      if (host !== undefined) connectOptions.host = host;
      const servername = settings.servername ?? (host !== undefined && isIP(host) === 0 ? host : undefined);
      if (servername !== undefined) connectOptions.servername = servername;
      const ca = pemList(settings.ca);
      if (ca !== undefined) connectOptions.ca = ca;
      if (settings.alpnProtocols !== undefined) connectOptions.ALPNProtocols = settings.alpnProtocols;
      secure = tls.connect(connectOptions);
      readyEvent = "secureConnect";
    }
  } catch (error) {
    socket.destroy();
    return Promise.reject(error);
  }
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      secure.removeListener("error", onFailure);
      secure.removeListener("end", onGone);
      secure.removeListener("close", onGone);
      secure.removeListener(readyEvent, onReady);
    };
    const onFailure = (error: Error): void => {
      cleanup();
      secure.on("error", ignore);
      secure.destroy();
      socket.destroy();
      reject(error);
    };
    const onGone = (): void => {
      const error = new Error("Cannot start TLS: the peer closed the connection during the handshake") as Error & { code: string };
      error.code = "ECONNRESET";
      onFailure(error);
    };
    const onReady = (): void => {
      cleanup();
      setWritableHighWaterMark(secure, highWaterMark);
      resolve(wrapSocket(secure, "tls", path, accepted));
    };
    secure.once("error", onFailure);
    secure.once("end", onGone);
    secure.once("close", onGone);
    secure.once(readyEvent, onReady);
  });
}

/** @internal Wraps a connected socket (used by NodeTransport). */
export function wrapSocket(socket: Socket, kind: NodeSocketKind, path: string | undefined, accepted: boolean, directIo = true): NodeConnection {
  return new NodeConnection(CONNECTION_TOKEN, socket, kind, path, accepted, directIo);
}

/**
 * @internal Sets the writable high-water mark of a socket made by a TLS
 * server: Node's `tls.Server` does not pass its `highWaterMark` option on to
 * the `TLSSocket`s it creates (Node 20), so set the stream state directly.
 */
export function setWritableHighWaterMark(socket: Socket, highWaterMark: number): void {
  const state = (socket as unknown as SocketInternals)._writableState;
  if (state !== undefined && state.highWaterMark !== highWaterMark) state.highWaterMark = highWaterMark;
}
