/**
 * In-memory pipes: two {@link Connection}s joined back to back, with the
 * behaviour of a real socket (asynchronous delivery, backpressure, half-close,
 * reset) and the faults a test wants to inject (latency on a clock, writes
 * split at arbitrary byte boundaries, a reset from the network).
 *
 * How it works: each end keeps an *outbox* (bytes in flight to the peer) and
 * an *inbox* (bytes that have arrived but that its handler has not taken,
 * because it is paused or has no handler yet). A write is copied into the
 * writer's outbox; a microtask (latency 0) or a clock timer (latency > 0)
 * moves it to the peer's inbox, and the peer's handler takes it from there,
 * piece by piece as the `split` rule says. The writer's `writableLength`
 * counts every byte that the peer's handler has not taken yet, wherever it
 * is, so a paused reader pushes back on the writer exactly as TCP would.
 *
 * Handlers are never called from inside a call on the same pipe (`write`,
 * `end`, `destroy`, `setHandler`, `resume`): every report is made from a
 * microtask or a clock timer, in a deterministic order.
 *
 * @module
 */
import { latin1Bytes } from "../../core/bytes";
import { type Clock, systemClock, type TimerHandle } from "../../core/clock";
import {
  type Connection,
  type ConnectionHandler,
  DEFAULT_HIGH_WATER_MARK,
  type SocketAddress,
} from "../../core/transport";

/**
 * How writes are cut before they reach the peer: a maximum piece size in
 * bytes, or a function that returns the offsets at which to cut one write
 * (offsets outside `(0, chunk.length)` are ignored; they are sorted first).
 */
export type SplitRule = number | ((chunk: Uint8Array) => readonly number[]);

/** Options of {@link createPipe} and of a {@link MemoryTransport}'s pipes. */
export interface MemoryPipeOptions {
  /**
   * The clock on which latency is scheduled. With a {@link VirtualClock},
   * bytes sent with latency arrive only when the test advances the clock.
   * @default systemClock
   */
  clock?: Clock;
  /**
   * Milliseconds between a write (or `end`, or a reset) and its arrival at
   * the peer. With 0, delivery happens in a microtask.
   * @default 0
   */
  latency?: number;
  /**
   * Fault injection: cut each write into several `data` calls at the peer.
   * @default Infinity (each write arrives as one `data` call)
   */
  split?: SplitRule;
  /**
   * High-water mark of each end's unconsumed output, in bytes.
   * @default DEFAULT_HIGH_WATER_MARK
   */
  highWaterMark?: number;
  /** A name for the pipe, used in its addresses and error messages. @default "pipe-N" */
  name?: string;
  /** What both ends report as `encrypted` (simulated TLS, no crypto). @default false */
  encrypted?: boolean;
  /** What both ends report as `alpnProtocol`. @default null */
  alpnProtocol?: string | null;
}

/** @internal What differs between the two ends of a pipe built by a transport. */
export interface MemoryEndOptions {
  readonly address: SocketAddress;
  /** Overrides the pipe's `highWaterMark` for this end. */
  readonly highWaterMark?: number | undefined;
}

/**
 * An error from the memory network, with the `code` that Node would use
 * (`ECONNREFUSED`, `ECONNRESET`, `EADDRINUSE`, ...).
 *
 * @example
 * ```ts
 * await transport.connect({ port: 1 }).catch((e: MemoryNetworkError) => e.code) // "ECONNREFUSED"
 * ```
 */
export class MemoryNetworkError extends Error {
  override name = "MemoryNetworkError";
  /** A Node-style error code such as `ECONNRESET`. */
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** The two connected ends returned by {@link createPipe}. */
export type MemoryPipe = readonly [MemoryConnection, MemoryConnection];

// ---------------------------------------------------------------------------
// Quiescence bookkeeping, shared by every pipe (see flushMemory).

/** Deliveries and handler calls made so far; flushMemory watches it move. */
let activity = 0;
/** Delivery timers pending on the system clock (flushMemory waits for them). */
let systemTimers = 0;
/** Resolvers waiting for the next system-clock delivery. */
let timerWaiters: Array<() => void> = [];

function systemTimerFired(): void {
  systemTimers--;
  const waiters = timerWaiters;
  timerWaiters = [];
  for (const resolve of waiters) resolve();
}

const nextTurn: () => Promise<void> =
  typeof globalThis.setImmediate === "function"
    ? () => new Promise((resolve) => globalThis.setImmediate(resolve))
    : () => new Promise((resolve) => globalThis.setTimeout(resolve, 0));

/** How many event-loop turns {@link flushMemory} lets pass before giving up. */
const FLUSH_TURN_LIMIT = 100_000;

/**
 * Resolves once every memory pipe is quiet: no delivery waits on a microtask
 * or on the system clock, and one whole event-loop turn passed without any
 * delivery (so that what handlers did in reaction has been delivered too).
 * Deliveries scheduled on another clock (a {@link VirtualClock}) are left
 * alone: advance that clock, then flush again.
 *
 * Throws if pipes are still busy after a great many turns (two handlers that
 * answer each other forever).
 *
 * @example
 * ```ts
 * const [a, b] = createPipe();
 * b.setHandler(recorder);
 * a.write(bytes);
 * await flushMemory(); // recorder has the bytes now
 * ```
 */
export async function flushMemory(): Promise<void> {
  for (let turns = 0; turns < FLUSH_TURN_LIMIT; turns++) {
    const before = activity;
    await nextTurn();
    if (activity !== before) continue;
    if (systemTimers === 0) return;
    await new Promise<void>((resolve) => timerWaiters.push(resolve));
  }
  throw new Error(`Cannot flush memory pipes: deliveries still happen after ${FLUSH_TURN_LIMIT} event-loop turns`);
}

// ---------------------------------------------------------------------------

/** One write on its way: the copied bytes, the cuts to make, how far the peer got. */
interface Segment {
  readonly bytes: Uint8Array;
  readonly cuts: readonly number[] | null;
  cut: number;
  position: number;
}

const END = Symbol("end");
const RESET = Symbol("reset");
type Packet = Segment | typeof END | typeof RESET;

const PIPE_TOKEN = Symbol("MemoryConnection");
let pipeCount = 0;

function checkOptions(options: MemoryPipeOptions): void {
  const { latency, split, highWaterMark } = options;
  if (latency !== undefined && !(Number.isFinite(latency) && latency >= 0)) {
    throw new RangeError(`Cannot create a memory pipe: latency must be a finite number >= 0, got ${latency}`);
  }
  if (typeof split === "number" && !(split === Infinity || (Number.isInteger(split) && split >= 1))) {
    throw new RangeError(`Cannot create a memory pipe: split must be an integer >= 1 or Infinity, got ${split}`);
  }
  if (split !== undefined && typeof split !== "number" && typeof split !== "function") {
    throw new TypeError("Cannot create a memory pipe: split must be a number or a function");
  }
  if (highWaterMark !== undefined && !(highWaterMark > 0)) {
    throw new RangeError(`Cannot create a memory pipe: highWaterMark must be > 0, got ${highWaterMark}`);
  }
}

/** @internal `name` or `name:port`, for messages. */
export function formatAddress(address: SocketAddress): string {
  return address.port === 0 ? address.address : `${address.address}:${address.port}`;
}

/** Sorted, de-duplicated cut offsets strictly inside `(0, length)`. */
function normalizeCuts(cuts: readonly number[], length: number): number[] {
  const inside = cuts.filter((cut) => Number.isInteger(cut) && cut > 0 && cut < length);
  inside.sort((x, y) => x - y);
  const result: number[] = [];
  for (const cut of inside) if (result[result.length - 1] !== cut) result.push(cut);
  return result;
}

/**
 * Creates two connected in-memory {@link Connection}s. What one writes, the
 * other receives, asynchronously and in order, with socket-like
 * backpressure, half-close and reset. See {@link MemoryPipeOptions} for
 * latency and split faults.
 *
 * @example
 * ```ts
 * const clock = new VirtualClock();
 * const [client, server] = createPipe({ clock, latency: 10, split: 1 });
 * server.setHandler({ data: (c) => console.log(c.length), end() {}, drain() {}, close() {} });
 * client.write(new TextEncoder().encode("hi"));
 * clock.advance(10); // the server now gets two `data` calls of 1 byte each
 * ```
 */
export function createPipe(options: MemoryPipeOptions = {}): MemoryPipe {
  const name = options.name ?? `pipe-${++pipeCount}`;
  return buildPipe(
    options,
    { address: { family: "memory", address: `${name}:a`, port: 0 } },
    { address: { family: "memory", address: `${name}:b`, port: 0 } },
  );
}

/** @internal Builds a pipe whose ends have the given addresses (used by MemoryTransport). */
export function buildPipe(options: MemoryPipeOptions, a: MemoryEndOptions, b: MemoryEndOptions): MemoryPipe {
  checkOptions(options);
  for (const end of [a, b]) if (end.highWaterMark !== undefined) checkOptions({ highWaterMark: end.highWaterMark });
  const first = new MemoryConnection(PIPE_TOKEN, options, a, b.address, null);
  const second = new MemoryConnection(PIPE_TOKEN, options, b, a.address, first);
  return [first, second];
}

/**
 * One end of an in-memory pipe. Implements {@link Connection}, plus fault
 * injection ({@link MemoryConnection.reset}) and a view of what is in transit.
 * Made by {@link createPipe} or a {@link MemoryTransport}.
 *
 * @example
 * ```ts
 * const [a, b] = createPipe();
 * b.setHandler(handler);
 * a.write(bytes);
 * a.reset(); // both ends now see close(error) with error.code === "ECONNRESET"
 * ```
 */
export class MemoryConnection implements Connection {
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;
  readonly encrypted: boolean;
  readonly alpnProtocol: string | null;

  #peer!: MemoryConnection;
  readonly #label: string;
  readonly #clock: Clock;
  readonly #latency: number;
  readonly #splitSize: number;
  readonly #splitFunction: ((chunk: Uint8Array) => readonly number[]) | null;
  readonly #highWaterMark: number;

  #handler: ConnectionHandler | null = null;
  #writable = true;
  #closed = false;
  #closeReported = false;
  #closeError: Error | undefined = undefined;
  #paused = false;
  #needDrain = false;
  /** The peer's end has been handed to our handler. */
  #endDelivered = false;

  /** Bytes written by us that the peer's handler has not taken. */
  #writableLength = 0;
  /** Packets in flight to the peer, and when each arrives (latency > 0). */
  #outbox: Packet[] = [];
  #outboxAt: number[] = [];
  #flushQueued = false;
  #timer: TimerHandle | null = null;
  /** Packets that arrived and wait for our handler. */
  #inbox: Array<Segment | typeof END> = [];
  #inboxHead = 0;
  #pumping = false;
  #serviceQueued = false;

  /** @internal Use {@link createPipe} or {@link MemoryTransport}. */
  constructor(
    token: symbol,
    options: MemoryPipeOptions,
    local: MemoryEndOptions,
    remote: SocketAddress,
    peer: MemoryConnection | null,
  ) {
    if (token !== PIPE_TOKEN) throw new TypeError("Cannot construct a MemoryConnection: use createPipe() or a MemoryTransport");
    if (peer !== null) {
      this.#peer = peer;
      peer.#peer = this;
    }
    this.localAddress = local.address;
    this.remoteAddress = remote;
    this.encrypted = options.encrypted ?? false;
    this.alpnProtocol = options.alpnProtocol ?? null;
    this.#label = `memory connection ${formatAddress(local.address)} -> ${formatAddress(remote)}`;
    this.#clock = options.clock ?? systemClock;
    this.#latency = options.latency ?? 0;
    const split = options.split;
    this.#splitSize = typeof split === "number" ? split : Infinity;
    this.#splitFunction = typeof split === "function" ? split : null;
    this.#highWaterMark = local.highWaterMark ?? options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
  }

  /** The other end of the pipe. */
  get peer(): MemoryConnection {
    return this.#peer;
  }

  get writableLength(): number {
    return this.#writableLength;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get writable(): boolean {
    return this.#writable;
  }

  /** Bytes written by this end that are still travelling (latency not yet elapsed). */
  get inFlightLength(): number {
    let total = 0;
    for (const packet of this.#outbox) if (typeof packet === "object") total += packet.bytes.byteLength - packet.position;
    return total;
  }

  /** Bytes that arrived at this end and wait for its handler (paused, or no handler yet). */
  get bufferedLength(): number {
    let total = 0;
    for (let i = this.#inboxHead; i < this.#inbox.length; i++) {
      const packet = this.#inbox[i]!;
      if (typeof packet === "object") total += packet.bytes.byteLength - packet.position;
    }
    return total;
  }

  /** True when nothing travels in either direction and nothing waits for a handler. */
  get idle(): boolean {
    const peer = this.#peer;
    return (
      this.#outbox.length === 0 &&
      peer.#outbox.length === 0 &&
      this.#inboxHead === this.#inbox.length &&
      peer.#inboxHead === peer.#inbox.length
    );
  }

  setHandler(handler: ConnectionHandler): void {
    this.#handler = handler;
    this.#scheduleService();
  }

  /** Writes a string as latin1 bytes (see the contract's `writeLatin1`). */
  writeLatin1(text: string): boolean {
    return this.write(latin1Bytes(text));
  }

  write(chunk: Uint8Array): boolean {
    if (!this.#writable) return false;
    const length = chunk.byteLength;
    if (length > 0) {
      // A copy: the peer's handler owns what it receives, and the writer may
      // reuse its buffer as soon as write returns.
      const bytes = new Uint8Array(chunk);
      const cuts = this.#splitFunction === null ? null : normalizeCuts(this.#splitFunction(bytes), length);
      this.#writableLength += length;
      this.#send({ bytes, cuts, cut: 0, position: 0 });
    }
    if (this.#writableLength >= this.#highWaterMark) {
      this.#needDrain = true;
      return false;
    }
    return true;
  }

  end(): void {
    if (!this.#writable) return;
    this.#writable = false;
    this.#send(END);
  }

  destroy(error?: Error): void {
    if (this.#closed) return;
    this.#abort(error);
    // The reset travels to the peer like a packet, overtaking the data that
    // was still in flight (dropped by #abort).
    this.#send(RESET);
  }

  /**
   * Fault injection: the link breaks. Both ends drop what is in flight or
   * buffered and see `close(error)` with `error.code === "ECONNRESET"`, as
   * when a middlebox resets the connection. Does nothing on a closed pipe end.
   *
   * @example
   * ```ts
   * const [client, server] = createPipe();
   * client.reset(); // both handlers get close(MemoryNetworkError ECONNRESET)
   * ```
   */
  reset(): void {
    const peer = this.#peer;
    if (!this.#closed) this.#abort(this.#resetError());
    if (!peer.#closed) peer.#abort(peer.#resetError());
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#scheduleService();
  }

  setNoDelay(_noDelay: boolean): void {
    // Nothing to do: a memory pipe never waits to coalesce writes.
  }

  // -------------------------------------------------------------------------
  // Sending side.

  #send(packet: Packet): void {
    this.#outbox.push(packet);
    if (this.#latency === 0) {
      if (!this.#flushQueued) {
        this.#flushQueued = true;
        queueMicrotask(this.#flushOutbox);
      }
      return;
    }
    const last = this.#outboxAt.length > 0 ? this.#outboxAt[this.#outboxAt.length - 1]! : -Infinity;
    // Keep arrival times ordered even if the clock steps back.
    this.#outboxAt.push(Math.max(last, this.#clock.now() + this.#latency));
    if (this.#timer === null) this.#startTimer(this.#latency);
  }

  #startTimer(ms: number): void {
    if (this.#clock === systemClock) systemTimers++;
    this.#timer = this.#clock.setTimeout(this.#onTimer, ms);
  }

  #stopTimer(): void {
    if (this.#timer === null) return;
    this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#clock === systemClock) systemTimerFired();
  }

  /** Latency 0: everything written during this tick arrives together. */
  readonly #flushOutbox = (): void => {
    this.#flushQueued = false;
    const packets = this.#outbox;
    if (packets.length === 0) return;
    this.#outbox = [];
    this.#peer.#arrive(packets, 0, packets.length);
  };

  /** Latency > 0: the head packet is due, and any other packet due by now. */
  readonly #onTimer = (): void => {
    this.#timer = null;
    if (this.#clock === systemClock) systemTimerFired();
    const now = this.#clock.now();
    let count = 1;
    while (count < this.#outboxAt.length && this.#outboxAt[count]! <= now) count++;
    const packets = this.#outbox.splice(0, count);
    this.#outboxAt.splice(0, count);
    if (this.#outbox.length > 0) this.#startTimer(Math.max(0, this.#outboxAt[0]! - now));
    this.#peer.#arrive(packets, 0, packets.length);
  };

  // -------------------------------------------------------------------------
  // Receiving side.

  #arrive(packets: Packet[], from: number, to: number): void {
    activity++;
    const sender = this.#peer;
    for (let i = from; i < to; i++) {
      const packet = packets[i]!;
      if (this.#closed) {
        // Arriving at a closed end: gone, but no longer counted as unflushed.
        if (typeof packet === "object") sender.#writableLength -= packet.bytes.byteLength - packet.position;
      } else if (packet === RESET) {
        this.#abort(this.#resetError());
      } else {
        this.#inbox.push(packet);
      }
    }
    if (sender.#writableLength < 0) sender.#writableLength = 0;
    this.#pump();
    sender.#maybeDrain();
  }

  /** Hands what waits in the inbox to the handler until paused or empty. */
  #pump(): void {
    if (this.#pumping) return;
    const sender = this.#peer;
    this.#pumping = true;
    try {
      for (;;) {
        const handler = this.#handler;
        if (this.#paused || this.#closed || handler === null || this.#inboxHead === this.#inbox.length) break;
        const packet = this.#inbox[this.#inboxHead]!;
        activity++;
        if (packet === END) {
          this.#inboxHead++;
          this.#endDelivered = true;
          handler.end();
          // Both directions have ended and all data is delivered: the
          // connection is closed, cleanly, on both ends.
          if (sender.#endDelivered && !this.#closed && !sender.#closed) {
            this.#finish(undefined);
            sender.#finish(undefined);
          }
          continue;
        }
        const { bytes, cuts } = packet;
        let stop: number;
        if (cuts !== null) stop = packet.cut < cuts.length ? cuts[packet.cut++]! : bytes.byteLength;
        else stop = Math.min(bytes.byteLength, packet.position + this.#splitSize);
        const piece = packet.position === 0 && stop === bytes.byteLength ? bytes : bytes.subarray(packet.position, stop);
        packet.position = stop;
        if (stop === bytes.byteLength) this.#inboxHead++;
        sender.#writableLength -= piece.byteLength;
        handler.data(piece);
      }
    } finally {
      this.#pumping = false;
      if (this.#inboxHead > 1024 && this.#inboxHead * 2 > this.#inbox.length) {
        this.#inbox.splice(0, this.#inboxHead);
        this.#inboxHead = 0;
      }
    }
  }

  #maybeDrain(): void {
    if (!this.#needDrain || !this.#writable || this.#closed || this.#writableLength >= this.#highWaterMark) return;
    const handler = this.#handler;
    if (handler === null) return; // reported once a handler is set
    this.#needDrain = false;
    activity++;
    handler.drain();
  }

  // -------------------------------------------------------------------------
  // Closing.

  #resetError(): MemoryNetworkError {
    return new MemoryNetworkError("ECONNRESET", `Cannot use ${this.#label}: the connection was reset`);
  }

  /** Closes this end at once: drops what it holds and what it was sending. */
  #abort(error: Error | undefined): void {
    const peer = this.#peer;
    let dropped = 0;
    for (let i = this.#inboxHead; i < this.#inbox.length; i++) {
      const packet = this.#inbox[i]!;
      if (typeof packet === "object") dropped += packet.bytes.byteLength - packet.position;
    }
    this.#inbox = [];
    this.#inboxHead = 0;
    peer.#writableLength = Math.max(0, peer.#writableLength - dropped);
    this.#outbox = [];
    this.#outboxAt = [];
    this.#stopTimer();
    this.#writableLength = 0;
    this.#finish(error);
  }

  /** Marks this end closed and reports `close` from a microtask (or once a handler is set). */
  #finish(error: Error | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#writable = false;
    this.#closeError = error;
    this.#scheduleService();
  }

  #scheduleService(): void {
    if (this.#serviceQueued) return;
    this.#serviceQueued = true;
    queueMicrotask(this.#service);
  }

  /** Work that must not run inside the caller's own call: pumping, drain, close. */
  readonly #service = (): void => {
    this.#serviceQueued = false;
    activity++;
    this.#pump();
    this.#peer.#maybeDrain();
    this.#maybeDrain();
    const handler = this.#handler;
    if (this.#closed && !this.#closeReported && handler !== null) {
      this.#closeReported = true;
      handler.close(this.#closeError);
    }
  };
}
