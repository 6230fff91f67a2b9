/**
 * A {@link Connection} over a `Bun.listen` or `Bun.connect` socket.
 *
 * How this works: Bun calls one handler object per listener (and one shared
 * by every outgoing connection) with the socket as first argument; the
 * socket's `data` is its {@link BunConnection}, so each event is one property
 * read and one call of the typhoon handler's method, with no closure and no
 * allocation per chunk (Bun hands each read its own fresh buffer, which
 * becomes the handler's).
 *
 * Output: `write` queues a copy of a chunk under 16 KiB, and the queues of
 * every connection written to are flushed together once per turn of the
 * event loop (a `setImmediate`), after the reads of that turn were handled.
 * Writes in one turn go out as one `socket.write` (joined), and a server
 * answering many connections writes to them back to back: a peer woken by
 * the first write is still awake for the next ones, which costs the kernel
 * less than a wake-up per connection (16 pipelined requests on 64
 * connections: +8 to +14% requests/s). A larger chunk, and a turn's queue
 * once it reaches 64 KiB, are written at once. Bun writes what the kernel takes and returns the
 * count; the rest stays queued (a large chunk's by reference, as Node keeps
 * it) and is written from Bun's `drain` callback. That queue is
 * `writableLength`.
 *
 * Input: while no handler is set, everything that arrives is held, in
 * order, and delivered once one is. While paused, `data` is held (and the
 * Bun socket paused, so that TCP pushes back); as on Node, `end` and `close`
 * still come once all data before them is delivered.
 *
 * @module
 */
import { isIP } from "node:net";
import type { Connection, ConnectionHandler, SocketAddress, StartTlsOptions } from "../../core/transport";
import type { BunSocket, BunSocketHandler, BunTlsOptions } from "./bun-api";
import { clientTlsOptions, serverTlsOptions } from "./tls-options";

/** Connections written to in this turn of the event loop, flushed by {@link flushTurn}. */
let turnQueue: BunConnection[] = [];
/** Flushes every connection in {@link turnQueue} (set in BunConnection's static block). */
let flushTurn: () => void;
/**
 * The runtime's own `setImmediate`, taken when this module loads, so that
 * fake timers installed later (a test's) cannot hold back every write.
 */
const scheduleTurnFlush: (callback: () => void) => unknown = globalThis.setImmediate.bind(globalThis);

/** What kind of socket a connection wraps. */
export type BunSocketKind = "tcp" | "tls" | "unix" | "tls-unix";

/** Queued chunks shorter than this are joined before writing, so that many small writes do not cost a syscall each. */
const COALESCE_BELOW = 16 * 1024;
/** The most bytes joined into one write. */
const COALESCE_LIMIT = 64 * 1024;

const CONNECTION_TOKEN = Symbol("BunConnection");

type Socket = BunSocket<BunConnection>;

/** An error with a stable code, as the runtimes' socket errors have. */
function codedError(message: string, code: string): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}

function familyOf(family: string | undefined, address: string): SocketAddress["family"] {
  if (family === "IPv6") return "IPv6";
  if (family === "IPv4") return "IPv4";
  return isIP(address) === 6 ? "IPv6" : "IPv4";
}

/** Where a connection is in the process of being made (outgoing) or announced (accepted TLS). */
interface Pending {
  resolve(connection: BunConnection): void;
  reject(error: Error): void;
}

/**
 * The socket callbacks every Bun connection shares. The listener adds its
 * own `open` (and `handshake` for TLS); `bun/transport.ts` builds them.
 * @internal
 */
export let SOCKET_EVENTS: Required<Pick<BunSocketHandler<BunConnection>, "data" | "drain" | "end" | "close" | "error">>;
/** @internal Makes the connection for a socket a listener accepted. */
export let acceptSocket: (socket: Socket, kind: BunSocketKind, path: string | undefined, highWaterMark: number, noDelay: boolean) => BunConnection;
/** @internal Makes an outgoing connection, to be passed as `data` to `Bun.connect`. */
export let outgoingConnection: (kind: BunSocketKind, path: string | undefined, highWaterMark: number, noDelay: boolean, pending: Pending) => BunConnection;
/** @internal Callbacks for outgoing sockets: attach on open, settle the connect on open (TCP) or handshake (TLS). */
export let CLIENT_EVENTS: BunSocketHandler<BunConnection>;
/** @internal A listener's TLS handshake: announce the connection, or drop it. */
export let serverHandshake: (socket: Socket, success: boolean, announce: (connection: BunConnection) => void) => void;

/**
 * One connection over a Bun socket (TCP, TLS or Unix). Made by
 * {@link BunTransport}; use it through the {@link Connection} contract.
 *
 * - `pause()` stops `data` at once and pauses the Bun socket, which stops
 *   reading from the kernel, so TCP flow control pushes back on the peer.
 * - `end()` flushes what is queued, then sends FIN (`socket.shutdown()`);
 *   the connection closes once the peer has sent its FIN too.
 * - `destroy()` resets the connection (`socket.terminate()`, an RST).
 * - `startTls()` upgrades a plain TCP or Unix connection in place with Bun's
 *   `upgradeTLS`. Bun cannot pause the socket it makes, so on an upgraded
 *   connection `pause()` holds the data in memory instead of pushing back.
 *
 * @example
 * ```ts
 * const connection = await bunTransport.connect({ host: "127.0.0.1", port: 8080 });
 * connection.setHandler({ data: (chunk) => {}, end() {}, drain() {}, close(error) {} });
 * connection.write(new TextEncoder().encode("GET / HTTP/1.1\r\nhost: x\r\n\r\n"));
 * ```
 */
export class BunConnection implements Connection {
  #socket: Socket | null = null;
  readonly #kind: BunSocketKind;
  /** For Unix sockets: the path of the listening side. */
  readonly #path: string | undefined;
  readonly #accepted: boolean;
  readonly #highWaterMark: number;
  #handler: ConnectionHandler | null = null;
  /** The fast path: a handler is set, not paused, nothing held, not closed. */
  #deliver = false;
  #paused = false;
  /** Whether the Bun socket is paused (for `pause()` or while there is no handler). */
  #socketPaused = false;
  /** Made by upgradeTLS: Bun cannot pause it. */
  #wrapped = false;

  // Output: chunks not yet written; the first from `#headOffset`.
  #queue: Uint8Array[] = [];
  #queueHead = 0;
  #headOffset = 0;
  #buffered = 0;
  #needDrain = false;
  /** The connection is in {@link turnQueue}: its queue is flushed at the end of this turn. */
  #flushScheduled = false;

  #writable = true;
  /** end() was called: FIN goes once the queue is empty. */
  #ending = false;
  #finSent = false;
  /** The peer's FIN was seen (reported or held). */
  #peerEnded = false;
  /** The Bun socket is gone. */
  #socketClosed = false;
  /** close is reported, held, or about to be reported. */
  #closed = false;
  /** The socket was handed to a TLS connection by startTls: ignore its events. */
  #handedOver = false;
  /** startTls waits for the queue to flush before upgrading. */
  #upgrade: { connection: BunConnection; tls: BunTlsOptions } | null = null;
  #error: Error | undefined = undefined;

  // Events held while there is no handler or while paused, in order.
  #held: Uint8Array[] | null = null;
  #heldEnd = false;
  #heldClose = false;
  #deliveryScheduled = false;

  #noDelay: boolean;
  #alpnProtocol: string | null = null;
  #pending: Pending | null = null;
  #localAddress: SocketAddress | null = null;
  #remoteAddress: SocketAddress | null = null;

  static {
    SOCKET_EVENTS = {
      data(socket: Socket, chunk: Uint8Array): void {
        const connection = socket.data;
        if (connection.#deliver) connection.#handler!.data(chunk);
        else connection.#holdData(chunk);
      },
      drain(socket: Socket): void {
        socket.data.#onWritable();
      },
      end(socket: Socket): void {
        socket.data.#onPeerEnd();
      },
      close(socket: Socket, error?: Error): void {
        socket.data.#onSocketClose(error);
      },
      error(socket: Socket, error: Error): void {
        // A handler threw inside one of the callbacks above. Close the
        // connection with that error, and rethrow it where the runtime
        // reports uncaught errors, as an exception in a Node 'data'
        // listener would be.
        socket.data?.destroy(error);
        queueMicrotask(() => {
          throw error;
        });
      },
    };

    flushTurn = () => {
      const connections = turnQueue;
      turnQueue = [];
      for (const connection of connections) {
        connection.#flushScheduled = false;
        try {
          connection.#onWritable();
        } catch (error) {
          // A drain handler threw: as for an error in a socket callback,
          // that connection closes with it and the error is rethrown where
          // the runtime reports uncaught errors. The other connections of
          // this turn are still flushed.
          connection.destroy(error instanceof Error ? error : new Error(String(error)));
          queueMicrotask(() => {
            throw error;
          });
        }
      }
    };

    acceptSocket = (socket, kind, path, highWaterMark, noDelay) => {
      const connection = new BunConnection(CONNECTION_TOKEN, kind, path, true, highWaterMark);
      socket.data = connection;
      connection.#attach(socket, noDelay);
      return connection;
    };

    outgoingConnection = (kind, path, highWaterMark, noDelay, pending) => {
      const connection = new BunConnection(CONNECTION_TOKEN, kind, path, false, highWaterMark);
      connection.#noDelay = noDelay;
      connection.#pending = pending;
      return connection;
    };

    CLIENT_EVENTS = {
      ...SOCKET_EVENTS,
      open(socket: Socket): void {
        const connection = socket.data;
        connection.#attach(socket, connection.#noDelay);
        if (!connection.encrypted) connection.#settle(null);
      },
      handshake(socket: Socket, success: boolean, error: Error | null): void {
        const connection = socket.data;
        if (connection.#pending === null) return;
        if (success) {
          connection.#alpnProtocol = socket.alpnProtocol || null;
          connection.#settle(null);
        } else {
          const failure = error ?? codedError("Cannot connect: the TLS handshake failed", "ERR_TLS_HANDSHAKE");
          connection.#settle(failure);
          connection.#closed = true;
          connection.#writable = false;
          if (!connection.#socketClosed) socket.terminate();
        }
      },
    };

    serverHandshake = (socket, success, announce) => {
      const connection = socket.data;
      if (!success) {
        // The client went away or broke the handshake: nobody knows of this
        // connection yet, so it just goes.
        connection.#closed = true;
        connection.#writable = false;
        if (!connection.#socketClosed) socket.terminate();
        return;
      }
      connection.#alpnProtocol = socket.alpnProtocol || null;
      announce(connection);
    };
  }

  /** @internal Made by {@link BunTransport}. */
  constructor(token: symbol, kind: BunSocketKind, path: string | undefined, accepted: boolean, highWaterMark: number) {
    if (token !== CONNECTION_TOKEN) throw new TypeError("Cannot construct a BunConnection: use BunTransport");
    this.#kind = kind;
    this.#path = path;
    this.#accepted = accepted;
    this.#highWaterMark = highWaterMark;
    this.#noDelay = true;
  }

  get localAddress(): SocketAddress | null {
    return (this.#localAddress ??= this.#address(true));
  }

  get remoteAddress(): SocketAddress | null {
    return (this.#remoteAddress ??= this.#address(false));
  }

  get encrypted(): boolean {
    return this.#kind === "tls" || this.#kind === "tls-unix";
  }

  get alpnProtocol(): string | null {
    return this.#alpnProtocol;
  }

  get writableLength(): number {
    return this.#buffered;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get writable(): boolean {
    return this.#writable;
  }

  setHandler(handler: ConnectionHandler): void {
    this.#handler = handler;
    if (this.#deliver || this.#handedOver) return;
    if (this.#hasHeld()) this.#scheduleDelivery();
    else this.#updateDelivery();
    this.#syncReading();
  }

  write(chunk: Uint8Array): boolean {
    if (!this.#writable) return false;
    const length = chunk.byteLength;
    if (length >= COALESCE_BELOW) {
      // A large chunk goes out at once, behind what this turn queued: nothing
      // is gained by holding it, and its unsent rest is kept by reference
      // (as Node keeps it).
      this.#enqueue(chunk, 0);
      this.#flushQueue();
    } else if (length > 0) {
      // A copy: the caller may reuse its buffer as soon as write returns,
      // as it could when the bytes went out during the call.
      const copy = new Uint8Array(length);
      copy.set(chunk);
      this.#enqueue(copy, 0);
      // Much written in one turn goes out now: what waits for the end of the
      // turn stays under one joined write, and writableLength stays as low
      // as when every write went out during the call.
      if (this.#buffered >= COALESCE_LIMIT) this.#flushQueue();
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        if (turnQueue.push(this) === 1) scheduleTurnFlush(flushTurn);
      }
    }
    if (this.#buffered < this.#highWaterMark) return true;
    this.#needDrain = true;
    return false;
  }

  end(): void {
    if (!this.#writable) return;
    this.#writable = false;
    this.#ending = true;
    if (this.#buffered === 0) this.#sendFin();
  }

  destroy(error?: Error): void {
    if (this.#closed && !this.#heldClose) return;
    if (error !== undefined) this.#error ??= error;
    this.#writable = false;
    this.#deliver = false;
    this.#dropOutput();
    this.#held = null;
    this.#heldEnd = false;
    this.#heldClose = false;
    this.#closed = true;
    const socket = this.#socket;
    // An RST, as the contract says; Bun calls `close` from inside
    // terminate(), which #onSocketClose ignores since #closed is set.
    if (socket !== null && !this.#socketClosed) socket.terminate();
    this.#socketClosed = true;
    if (this.#pending !== null) {
      this.#settle(this.#error ?? codedError("Cannot connect: the connection was destroyed", "ECONNABORTED"));
      return;
    }
    // Reported in a microtask, so that the handler is not re-entered from
    // inside a call it made (Node reports it a tick later too).
    queueMicrotask(() => this.#reportClose());
  }

  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#deliver = false;
    this.#syncReading();
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.#hasHeld()) this.#scheduleDelivery();
    else this.#updateDelivery();
    this.#syncReading();
  }

  setNoDelay(noDelay: boolean): void {
    if (noDelay === this.#noDelay || this.#socket === null || this.#socketClosed) return;
    if (this.#kind === "unix" || this.#kind === "tls-unix") return;
    this.#noDelay = noDelay;
    this.#socket.setNoDelay(noDelay);
  }

  /**
   * Upgrades this plain TCP or Unix connection to TLS in place (Bun's
   * `upgradeTLS`), as server or client. From the call on, this connection
   * reports nothing more to its handler and ignores writes; what was written
   * before is flushed first, in the clear (reading waits meanwhile, so that
   * the peer's first TLS bytes stay in the kernel). Resolves with the
   * encrypted connection once the handshake is done; rejects with the TLS
   * error (a certificate not trusted, a failed handshake, the peer gone).
   * Bytes received but not yet delivered (held while no handler was set or
   * while paused) cannot be handed to Bun's TLS layer, so startTls rejects
   * when there are some.
   *
   * @example
   * ```ts
   * connection.write(new TextEncoder().encode("220 Ready to start TLS\r\n"));
   * const secure = await connection.startTls({ server: { key, cert } });
   * secure.setHandler(handler);
   * ```
   */
  startTls(options: StartTlsOptions): Promise<Connection> {
    const socket = this.#socket;
    if (this.encrypted) return Promise.reject(new Error("Cannot start TLS: the connection is already encrypted"));
    if (socket === null || this.#closed || this.#socketClosed || !this.#writable) {
      return Promise.reject(codedError("Cannot start TLS: the connection is closed or ended", "ERR_SOCKET_CLOSED"));
    }
    if (this.#held !== null) {
      const bytes = this.#held.reduce((total, chunk) => total + chunk.byteLength, 0);
      return Promise.reject(new Error(`Cannot start TLS: ${bytes} bytes received are not delivered yet (no handler was set, or the connection is paused)`));
    }
    if (typeof socket.upgradeTLS !== "function") return Promise.reject(new Error("Cannot start TLS: this Bun has no upgradeTLS"));
    let tls: BunTlsOptions;
    try {
      tls = options.server !== undefined ? serverTlsOptions(options.server) : clientTlsOptions(options.client, options.client.host, this.#kind === "unix");
    } catch (error) {
      return Promise.reject(error);
    }
    // Read before the upgrade: Bun detaches this socket from its addresses.
    const localAddress = this.localAddress;
    const remoteAddress = this.remoteAddress;
    return new Promise<Connection>((resolve, reject) => {
      const upgraded = new BunConnection(CONNECTION_TOKEN, this.#kind === "unix" ? "tls-unix" : "tls", this.#path, this.#accepted, this.#highWaterMark);
      upgraded.#pending = { resolve, reject };
      upgraded.#wrapped = true;
      upgraded.#noDelay = this.#noDelay;
      upgraded.#localAddress = localAddress;
      upgraded.#remoteAddress = remoteAddress;
      this.#handedOver = true;
      this.#deliver = false;
      this.#writable = false;
      this.#closed = true;
      this.#upgrade = { connection: upgraded, tls };
      if (this.#buffered === 0) {
        this.#upgradeNow();
      } else if (!this.#socketPaused) {
        this.#socketPaused = true;
        socket.pause();
      }
    });
  }

  /** Hands the socket to Bun's TLS layer, once nothing written is left to flush. */
  #upgradeNow(): void {
    const { connection, tls } = this.#upgrade!;
    this.#upgrade = null;
    const socket = this.#socket!;
    // Bun cannot resume the socket once wrapped: resume it now. No `data`
    // can come in between, as this runs without yielding.
    if (this.#socketPaused) {
      this.#socketPaused = false;
      socket.resume();
    }
    try {
      const [, tlsSocket] = socket.upgradeTLS!<BunConnection>({ data: connection, tls, socket: CLIENT_EVENTS });
      connection.#socket = tlsSocket;
    } catch (error) {
      connection.#settle(error instanceof Error ? error : new Error(String(error)));
      socket.terminate();
    }
  }

  // ---------------------------------------------------------------- input

  #holdData(chunk: Uint8Array): void {
    if (this.#closed || this.#handedOver) return;
    (this.#held ??= []).push(chunk);
    // Nobody reads yet: stop reading from the kernel too.
    this.#syncReading();
  }

  #onPeerEnd(): void {
    if (this.#handedOver || this.#peerEnded) return;
    this.#peerEnded = true;
    // As on Node, pausing holds data only: `end` comes once all data is
    // delivered, paused or not.
    if (this.#handler !== null && this.#held === null && !this.#closed) this.#handler.end();
    else if (!this.#closed) this.#heldEnd = true;
  }

  #onSocketClose(error: Error | undefined): void {
    if (this.#handedOver) {
      const upgrade = this.#upgrade;
      this.#upgrade = null;
      this.#socketClosed = true;
      // The peer went away while what was written before startTls flushed.
      if (upgrade !== null) upgrade.connection.#settle(error ?? codedError("Cannot start TLS: the connection closed before the handshake", "ECONNRESET"));
      return;
    }
    const wasClosed = this.#socketClosed;
    this.#socketClosed = true;
    this.#writable = false;
    this.#dropOutput();
    if (this.#pending !== null) {
      this.#closed = true;
      this.#settle(error ?? codedError("Cannot connect: the connection closed before it was ready", "ECONNRESET"));
      return;
    }
    if (this.#closed || wasClosed) return;
    if (error !== undefined) {
      this.#closed = true;
      // An abnormal close: what is held will never be read; report it now.
      this.#error ??= error;
      this.#held = null;
      this.#heldEnd = false;
      if (this.#handler !== null) {
        this.#deliver = false;
        this.#handler.close(this.#error);
      } else {
        this.#heldClose = true;
      }
      return;
    }
    // A clean close after our FIN means the peer sent its FIN: Bun closes a
    // plain socket at once then, without calling `end`.
    if (!this.#peerEnded && this.#finSent) this.#onPeerEnd();
    this.#closed = true;
    this.#deliver = false;
    if (this.#handler !== null && !this.#hasHeld()) this.#handler.close(this.#error);
    else this.#heldClose = true;
  }

  #hasHeld(): boolean {
    return this.#held !== null || this.#heldEnd || this.#heldClose;
  }

  #scheduleDelivery(): void {
    if (this.#deliveryScheduled) return;
    this.#deliveryScheduled = true;
    queueMicrotask(() => this.#deliverHeld());
  }

  /** Delivers held events in order while there is a handler; data only while not paused. */
  #deliverHeld(): void {
    this.#deliveryScheduled = false;
    for (;;) {
      const handler = this.#handler;
      if (handler === null || this.#handedOver) break;
      const held = this.#held;
      if (held !== null) {
        if (this.#paused) break;
        const chunk = held.shift()!;
        if (held.length === 0) this.#held = null;
        handler.data(chunk);
      } else if (this.#heldEnd) {
        this.#heldEnd = false;
        handler.end();
      } else if (this.#heldClose) {
        this.#heldClose = false;
        handler.close(this.#error);
        return;
      } else {
        break;
      }
    }
    this.#updateDelivery();
    this.#syncReading();
  }

  #updateDelivery(): void {
    this.#deliver = this.#handler !== null && !this.#paused && !this.#closed && !this.#handedOver && !this.#hasHeld();
  }

  /** Pauses the Bun socket while nothing may be delivered, resumes it otherwise. */
  #syncReading(): void {
    const socket = this.#socket;
    if (socket === null || this.#socketClosed || this.#wrapped) return;
    const pause = this.#paused || this.#handler === null;
    if (pause === this.#socketPaused) return;
    // Without a handler, only stop reading once something arrived: most
    // handlers are set at once, and pausing costs a system call.
    if (pause && !this.#paused && this.#held === null) return;
    this.#socketPaused = pause;
    if (pause) socket.pause();
    else socket.resume();
  }

  // --------------------------------------------------------------- output

  #enqueue(chunk: Uint8Array, offset: number): void {
    if (this.#queueHead === this.#queue.length) this.#headOffset = offset;
    this.#queue.push(chunk);
    this.#buffered += chunk.byteLength - offset;
  }

  /** Writes queued chunks until the kernel takes no more. */
  #flushQueue(): void {
    const socket = this.#socket!;
    const queue = this.#queue;
    while (this.#queueHead < queue.length) {
      let chunk = queue[this.#queueHead]!;
      let offset = this.#headOffset;
      let remaining = chunk.byteLength - offset;
      if (remaining < COALESCE_BELOW && queue.length - this.#queueHead > 1) {
        chunk = this.#coalesce();
        offset = 0;
        remaining = chunk.byteLength;
      }
      const written = socket.write(chunk, offset, remaining);
      if (written >= remaining) {
        this.#buffered -= remaining;
        queue[this.#queueHead++] = undefined as unknown as Uint8Array;
        this.#headOffset = 0;
        continue;
      }
      if (written > 0) {
        this.#buffered -= written;
        this.#headOffset += written;
      }
      break;
    }
    if (this.#queueHead === queue.length) {
      this.#queue = [];
      this.#queueHead = 0;
    } else if (this.#queueHead >= 1024) {
      this.#queue = queue.slice(this.#queueHead);
      this.#queueHead = 0;
    }
  }

  /**
   * Joins the head of the queue (from its offset) with the chunks after it,
   * up to {@link COALESCE_LIMIT} bytes, into one chunk that replaces them.
   * The joined chunk starts with the same bytes, as a TLS write retry needs.
   */
  #coalesce(): Uint8Array {
    const queue = this.#queue;
    let end = this.#queueHead;
    let total = 0;
    while (end < queue.length) {
      const size = queue[end]!.byteLength - (end === this.#queueHead ? this.#headOffset : 0);
      if (end > this.#queueHead && total + size > COALESCE_LIMIT) break;
      total += size;
      end++;
    }
    const joined = new Uint8Array(total);
    let at = 0;
    for (let i = this.#queueHead; i < end; i++) {
      const part = queue[i]!;
      const piece = i === this.#queueHead && this.#headOffset > 0 ? part.subarray(this.#headOffset) : part;
      joined.set(piece, at);
      at += piece.byteLength;
      queue[i] = undefined as unknown as Uint8Array;
    }
    this.#queueHead = end - 1;
    queue[this.#queueHead] = joined;
    this.#headOffset = 0;
    return joined;
  }

  #onWritable(): void {
    if (this.#socketClosed) return;
    if (this.#handedOver) {
      if (this.#upgrade !== null) {
        this.#flushQueue();
        if (this.#buffered === 0) this.#upgradeNow();
      }
      return;
    }
    if (this.#buffered > 0) this.#flushQueue();
    if (this.#buffered === 0 && this.#ending && !this.#finSent) this.#sendFin();
    if (this.#needDrain && this.#buffered < this.#highWaterMark && !this.#closed) {
      this.#needDrain = false;
      this.#handler?.drain();
    }
  }

  #sendFin(): void {
    this.#finSent = true;
    if (this.#socket !== null && !this.#socketClosed) this.#socket.shutdown();
  }

  #dropOutput(): void {
    this.#queue = [];
    this.#queueHead = 0;
    this.#headOffset = 0;
    this.#buffered = 0;
    this.#needDrain = false;
  }

  // ---------------------------------------------------------------- misc

  #attach(socket: Socket, noDelay: boolean): void {
    this.#socket = socket;
    this.#noDelay = true;
    // Bun turns Nagle off on every TCP socket; turn it back on if asked.
    if (!noDelay) this.setNoDelay(false);
  }

  #settle(error: Error | null): void {
    const pending = this.#pending;
    if (pending === null) return;
    this.#pending = null;
    if (error === null) pending.resolve(this);
    else pending.reject(error);
  }

  #reportClose(): void {
    const handler = this.#handler;
    if (handler === null) this.#heldClose = true;
    else handler.close(this.#error);
  }

  #address(local: boolean): SocketAddress | null {
    if (this.#kind === "unix" || this.#kind === "tls-unix") {
      // The listening side of a Unix socket has the path; the connecting side is unnamed.
      const named = local === this.#accepted;
      return { family: "unix", address: named ? (this.#path ?? "") : "", port: 0 };
    }
    const socket = this.#socket;
    if (socket === null || this.#socketClosed) return null;
    const address = local ? socket.localAddress : socket.remoteAddress;
    const port = local ? socket.localPort : socket.remotePort;
    if (address === undefined || port === undefined) return null;
    return { family: familyOf(local ? socket.localFamily : socket.remoteFamily, address), address, port };
  }
}
