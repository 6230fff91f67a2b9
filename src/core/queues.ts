/**
 * Asynchronous queues for coroutines, after Tornado's `tornado.queues`:
 * {@link Queue} (first in, first out), {@link PriorityQueue} (lowest first)
 * and {@link LifoQueue} (last in, first out). Like Tornado's, they coordinate
 * async functions on one event loop; they are not thread-safe queues.
 *
 * How this works: a queue holds its items in a {@link QueueStore} (a ring
 * buffer, a binary heap or a stack) and two lists of waiting calls, getters
 * and putters, each served first come, first served. Getters wait only while
 * the queue is empty and putters only while it is full, so:
 *
 * - {@link Queue.putNowait} with getters waiting hands the item straight to
 *   the longest waiting getter;
 * - {@link Queue.getNowait} with putters waiting takes an item and moves the
 *   longest waiting putter's item into the queue (first moving it in, then
 *   taking, as Tornado does, so a {@link LifoQueue} or {@link PriorityQueue}
 *   may hand out that very item).
 *
 * A waiter that times out is unlinked at once and rejected with a
 * {@link TimeoutError}: it never receives an item, and a putter that timed
 * out never adds its item. Timeouts follow the {@link Timeout} rules of
 * `./locks` (milliseconds from now, or `{ deadline }` in `clock.now()`
 * terms) and use the `{ clock }` option.
 *
 * Unlike Tornado, `maxsize` 0 does not mean unbounded: an unbounded queue has
 * `maxsize: Infinity`, which is the default, and 0 is a `RangeError`.
 *
 * @module
 */

import { systemClock, type Clock } from "./clock";
import { WaitQueue, type Timeout, type TimeoutError } from "./locks";

/** Options of {@link Queue} and {@link LifoQueue}. */
export interface QueueOptions {
  /**
   * How many items the queue holds before {@link Queue.put} waits and
   * {@link Queue.putNowait} throws: a positive integer, or `Infinity` for no
   * limit. (Tornado's default is 0, meaning no limit; here it is `Infinity`,
   * said explicitly, and 0 is a `RangeError`.)
   * @default Infinity
   */
  maxsize?: number;
  /**
   * Source of time for timeouts.
   * @default systemClock
   */
  clock?: Clock;
}

/** Options of {@link PriorityQueue}. */
export interface PriorityQueueOptions<T> extends QueueOptions {
  /**
   * Orders items: negative if `a` comes out before `b`, positive if after, 0
   * for equal priority (equal items come out first in, first out). The
   * default orders Python-style, see {@link PriorityQueue}.
   * @default Python-style ordering
   */
  compare?: (a: T, b: T) => number;
}

/**
 * Where a {@link Queue} keeps its items; the order in which {@link take}
 * returns them is the queue's discipline. Override
 * {@link Queue.createStore} to plug in another one (Tornado's `_init`,
 * `_put` and `_get`).
 *
 * @example
 * ```ts
 * class Stack<T> implements QueueStore<T> {
 *   #items: T[] = [];
 *   get size() { return this.#items.length; }
 *   put(item: T) { this.#items.push(item); }
 *   take() { return this.#items.pop()!; }
 * }
 * ```
 */
export interface QueueStore<T> {
  /** How many items the store holds. */
  readonly size: number;
  /** Adds an item. */
  put(item: T): void;
  /** Removes and returns the next item; called only when {@link size} > 0. */
  take(): T;
}

/**
 * {@link Queue.getNowait} found the queue empty: Tornado's `QueueEmpty`.
 *
 * @example
 * ```ts
 * try {
 *   queue.getNowait();
 * } catch (e) {
 *   if (e instanceof QueueEmpty) console.log(e.code); // "ERR_QUEUE_EMPTY"
 * }
 * ```
 */
export class QueueEmpty extends Error {
  override name = "QueueEmpty";
  /** A stable machine-readable code. */
  readonly code = "ERR_QUEUE_EMPTY";
}

/**
 * {@link Queue.putNowait} found the queue full: Tornado's `QueueFull`.
 *
 * @example
 * ```ts
 * try {
 *   queue.putNowait(item);
 * } catch (e) {
 *   if (e instanceof QueueFull) console.log(e.code); // "ERR_QUEUE_FULL"
 * }
 * ```
 */
export class QueueFull extends Error {
  override name = "QueueFull";
  /** A stable machine-readable code. */
  readonly code = "ERR_QUEUE_FULL";
}

function iteratorResult<T>(value: T): IteratorResult<T> {
  return { value, done: false };
}

/**
 * Coordinates producer and consumer coroutines: Tornado's
 * `tornado.queues.Queue`. Items come out first in, first out. With a finite
 * `maxsize`, {@link put} waits while the queue is full, which is how a
 * producer is held back (backpressure). {@link get} waits while it is empty.
 * Waiting getters and putters are served first come, first served.
 *
 * {@link taskDone} and {@link join} track work: every item put counts as an
 * unfinished task until a consumer calls {@link taskDone} for it, and
 * {@link join} waits until none is left.
 *
 * `for await (const item of queue)` gets items forever (each step is a
 * {@link get}); leave the loop with `break` or `return`.
 *
 * @example
 * ```ts
 * const q = new Queue<number>({ maxsize: 2 });
 *
 * async function consumer() {
 *   for await (const item of q) {
 *     try {
 *       console.log(`Doing work on ${item}`);
 *       await doWork(item);
 *     } finally {
 *       q.taskDone();
 *     }
 *   }
 * }
 *
 * async function producer() {
 *   for (let item = 0; item < 5; item++) {
 *     await q.put(item);
 *     console.log(`Put ${item}`);
 *   }
 * }
 *
 * void consumer();     // runs forever, in the background
 * await producer();    // waits whenever the queue holds 2 items
 * await q.join();      // waits until the consumer has done all 5
 * console.log("Done");
 * ```
 */
export class Queue<T> implements AsyncIterable<T> {
  readonly #maxsize: number;
  readonly #store: QueueStore<T>;
  readonly #getters: WaitQueue<T>;
  readonly #putters: WaitQueue<void, T>;
  readonly #joiners: WaitQueue<void>;
  #unfinished = 0;

  /**
   * @param options `maxsize` (default `Infinity`; a positive integer or
   *   `Infinity`, else a `RangeError`) and `clock` (default
   *   {@link systemClock}).
   */
  constructor(options: QueueOptions = {}) {
    const maxsize = options.maxsize ?? Infinity;
    if (!(maxsize >= 1) || !(Number.isInteger(maxsize) || maxsize === Infinity)) {
      throw new RangeError(
        `Cannot create a queue: maxsize ${maxsize} is not a positive integer or Infinity (use Infinity for an unbounded queue)`,
      );
    }
    const clock = options.clock ?? systemClock;
    this.#maxsize = maxsize;
    this.#store = this.createStore(options);
    this.#getters = new WaitQueue<T>(clock, "get from the queue");
    this.#putters = new WaitQueue<void, T>(clock, "put into the queue");
    this.#joiners = new WaitQueue<void>(clock, "join the queue");
  }

  /**
   * Makes the store that holds the items; called once, by the constructor,
   * before any field of a subclass is set. Subclasses override it to change
   * the order in which items come out.
   *
   * @example
   * ```ts
   * class StackQueue<T> extends Queue<T> {
   *   protected override createStore(): QueueStore<T> {
   *     return new Stack<T>(); // see QueueStore
   *   }
   * }
   * ```
   */
  protected createStore(options: QueueOptions): QueueStore<T> {
    return new RingBuffer<T>();
  }

  /**
   * The most items the queue holds; `Infinity` for an unbounded queue.
   *
   * @example
   * ```ts
   * new Queue().maxsize; // Infinity
   * ```
   */
  get maxsize(): number {
    return this.#maxsize;
  }

  /**
   * How many items were put and not yet marked done with {@link taskDone}.
   *
   * @example
   * ```ts
   * if (q.unfinishedTasks === 0) console.log("all work done");
   * ```
   */
  get unfinishedTasks(): number {
    return this.#unfinished;
  }

  /**
   * How many items the queue holds (not counting the items of waiting
   * putters).
   *
   * @example
   * ```ts
   * q.putNowait("a");
   * q.qsize(); // 1
   * ```
   */
  qsize(): number {
    return this.#store.size;
  }

  /**
   * Whether the queue holds no items.
   *
   * @example
   * ```ts
   * if (!q.empty()) q.getNowait();
   * ```
   */
  empty(): boolean {
    return this.#store.size === 0;
  }

  /**
   * Whether the queue holds `maxsize` items; never true when unbounded.
   *
   * @example
   * ```ts
   * if (!q.full()) q.putNowait(item);
   * ```
   */
  full(): boolean {
    return this.#store.size >= this.#maxsize;
  }

  /**
   * Puts an item, waiting while the queue is full (after the putters that
   * are already waiting). Rejects with a {@link TimeoutError} if `timeout`
   * expires first (the item is then not put), or with a `RangeError` for a
   * timeout that is not a number.
   *
   * @example
   * ```ts
   * await q.put(job, 1000); // TimeoutError if no room within 1 s
   * ```
   */
  put(item: T, timeout?: Timeout): Promise<void> {
    const deadline = this.#putters.deadlineOf(timeout);
    if (typeof deadline !== "number") return Promise.reject(deadline);
    if (this.#offer(item)) return Promise.resolve();
    return this.#putters.wait(deadline, item);
  }

  /**
   * Puts an item without waiting; throws {@link QueueFull} if there is no
   * room.
   *
   * @example
   * ```ts
   * try { q.putNowait(job); } catch (e) { if (e instanceof QueueFull) dropJob(job); }
   * ```
   */
  putNowait(item: T): void {
    if (!this.#offer(item)) {
      throw new QueueFull(`Cannot put into the queue: it is full (maxsize ${this.#maxsize})`);
    }
  }

  /**
   * Removes and returns an item, waiting while the queue is empty (after the
   * getters that are already waiting). Rejects with a {@link TimeoutError}
   * if `timeout` expires first (no item is then taken), or with a
   * `RangeError` for a timeout that is not a number.
   *
   * @example
   * ```ts
   * const job = await q.get({ deadline: clock.now() + 1000 });
   * ```
   */
  get(timeout?: Timeout): Promise<T> {
    const deadline = this.#getters.deadlineOf(timeout);
    if (typeof deadline !== "number") return Promise.reject(deadline);
    // Getters wait only while the store is empty, so this never jumps the queue.
    if (this.#store.size > 0) return Promise.resolve(this.#take());
    return this.#getters.wait(deadline, undefined);
  }

  /**
   * Removes and returns an item without waiting; throws {@link QueueEmpty}
   * if there is none.
   *
   * @example
   * ```ts
   * while (!q.empty()) handle(q.getNowait());
   * ```
   */
  getNowait(): T {
    if (this.#store.size === 0) throw new QueueEmpty("Cannot get from the queue: it is empty");
    return this.#take();
  }

  /**
   * Marks one item, formerly got from the queue, as done. Each {@link get}
   * by a consumer is followed by one call, when the consumer is done with
   * the item; when every item put has been marked done, {@link join}
   * resolves. Throws a `RangeError` (Tornado's `ValueError`) if called more
   * times than items were put.
   *
   * @example
   * ```ts
   * const item = await q.get();
   * try { await handle(item); } finally { q.taskDone(); }
   * ```
   */
  taskDone(): void {
    if (this.#unfinished <= 0) {
      throw new RangeError("Cannot mark a task done: taskDone() was called more times than items were put");
    }
    if (--this.#unfinished === 0) this.#joiners.resolveAll(undefined);
  }

  /**
   * Waits until every item put has been marked done with {@link taskDone}.
   * Rejects with a {@link TimeoutError} if `timeout` expires first, or with a
   * `RangeError` for a timeout that is not a number.
   *
   * @example
   * ```ts
   * await q.join(60_000);
   * ```
   */
  join(timeout?: Timeout): Promise<void> {
    const deadline = this.#joiners.deadlineOf(timeout);
    if (typeof deadline !== "number") return Promise.reject(deadline);
    if (this.#unfinished === 0) return Promise.resolve();
    return this.#joiners.wait(deadline, undefined);
  }

  /**
   * Iterates forever, each step a {@link get}: `for await (const item of q)`.
   * Several loops over one queue share its items, first come first served.
   *
   * @example
   * ```ts
   * for await (const item of q) {
   *   if (item === STOP) break;
   *   handle(item);
   *   q.taskDone();
   * }
   * ```
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    const iterator: AsyncIterableIterator<T> = {
      next: () => this.get().then(iteratorResult),
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /** Adds an item if it fits, or hands it to the first waiting getter. */
  #offer(item: T): boolean {
    if (this.#getters.size > 0) {
      // Getters wait only while the store is empty: hand the item over.
      this.#unfinished++;
      this.#getters.resolveFirst(item);
      return true;
    }
    if (this.#store.size >= this.#maxsize) return false;
    this.#store.put(item);
    this.#unfinished++;
    return true;
  }

  /** Takes the next item; the store is not empty. */
  #take(): T {
    if (this.#putters.size > 0) {
      // Putters wait only while the store is full: let the first one in, then
      // take (Tornado's order, which matters for LIFO and priority queues).
      this.#store.put(this.#putters.firstData);
      this.#unfinished++;
      this.#putters.resolveFirst(undefined);
    }
    return this.#store.take();
  }
}

/**
 * A queue that hands out the item with the lowest priority first: Tornado's
 * `tornado.queues.PriorityQueue`. Items of equal priority come out in the
 * order they went in (unlike Python's `heapq`, which compares the next tuple
 * element).
 *
 * The `compare` option orders items like `Array.prototype.sort`. Without it,
 * items are compared the way Python compares tuples, so Tornado's
 * `(priority, item)` pairs work as `[priority, item]`:
 *
 * - numbers and bigints by value (`NaN` after every other number);
 * - strings by UTF-16 code units;
 * - arrays element by element, a shorter prefix first;
 * - values of different kinds in that order (numbers, strings, arrays);
 * - everything else (objects, booleans, `null`, `undefined`) as equal, so
 *   `[1, { job }]` and `[1, { other }]` come out first in, first out.
 *
 * @example
 * ```ts
 * const q = new PriorityQueue<[number, string]>();
 * q.putNowait([1, "medium-priority item"]);
 * q.putNowait([0, "high-priority item"]);
 * q.putNowait([10, "low-priority item"]);
 * q.getNowait(); // [0, "high-priority item"]
 * q.getNowait(); // [1, "medium-priority item"]
 * q.getNowait(); // [10, "low-priority item"]
 *
 * const jobs = new PriorityQueue<Job>({ compare: (a, b) => a.deadline - b.deadline });
 * ```
 */
export class PriorityQueue<T> extends Queue<T> {
  /**
   * @param options {@link QueueOptions} and `compare` (default: Python-style
   *   ordering, see the class documentation).
   */
  constructor(options: PriorityQueueOptions<T> = {}) {
    super(options);
  }

  /**
   * Makes the binary heap that orders the items; called once, by the
   * constructor.
   *
   * @example
   * ```ts
   * // Highest first, by reversing whatever order was asked for.
   * class MaxQueue<T> extends PriorityQueue<T> {
   *   protected override createStore(options: PriorityQueueOptions<T>): QueueStore<T> {
   *     const compare = options.compare ?? ((a: T, b: T) => (a < b ? -1 : a > b ? 1 : 0));
   *     return super.createStore({ ...options, compare: (a, b) => compare(b, a) });
   *   }
   * }
   * ```
   */
  protected override createStore(options: PriorityQueueOptions<T>): QueueStore<T> {
    const compare = options.compare ?? comparePriorities;
    if (typeof compare !== "function") {
      throw new TypeError(`Cannot create a priority queue: compare ${String(compare)} is not a function`);
    }
    return new BinaryHeap<T>(compare);
  }
}

/**
 * A queue that hands out the most recently put item first: Tornado's
 * `tornado.queues.LifoQueue`.
 *
 * @example
 * ```ts
 * const q = new LifoQueue<number>();
 * q.putNowait(3);
 * q.putNowait(2);
 * q.putNowait(1);
 * q.getNowait(); // 1
 * q.getNowait(); // 2
 * q.getNowait(); // 3
 * ```
 */
export class LifoQueue<T> extends Queue<T> {
  /**
   * Makes the stack that holds the items; called once, by the constructor.
   *
   * @example
   * ```ts
   * class TracedLifoQueue<T> extends LifoQueue<T> {
   *   protected override createStore(options: QueueOptions): QueueStore<T> {
   *     const stack = super.createStore(options);
   *     return {
   *       get size() { return stack.size; },
   *       put: (item) => { console.log("in", item); stack.put(item); },
   *       take: () => stack.take(),
   *     };
   *   }
   * }
   * ```
   */
  protected override createStore(options: QueueOptions): QueueStore<T> {
    return new Stack<T>();
  }
}

/** Python-style ordering, the default of {@link PriorityQueue}. */
function comparePriorities(a: unknown, b: unknown): number {
  const ra = kindRank(a);
  const rb = kindRank(b);
  if (ra !== rb) return ra - rb;
  switch (ra) {
    case 0: {
      const aNaN = a !== a; // bigints are never NaN
      const bNaN = b !== b;
      if (aNaN || bNaN) return aNaN === bNaN ? 0 : aNaN ? 1 : -1;
      return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
    }
    case 1:
      return (a as string) < (b as string) ? -1 : (a as string) > (b as string) ? 1 : 0;
    case 2: {
      const x = a as readonly unknown[];
      const y = b as readonly unknown[];
      const n = Math.min(x.length, y.length);
      for (let i = 0; i < n; i++) {
        const c = comparePriorities(x[i], y[i]);
        if (c !== 0) return c;
      }
      return x.length - y.length;
    }
    default:
      return 0;
  }
}

function kindRank(value: unknown): number {
  switch (typeof value) {
    case "number":
    case "bigint":
      return 0;
    case "string":
      return 1;
    default:
      return Array.isArray(value) ? 2 : 3;
  }
}

const RING_MIN_CAPACITY = 8;

/** A FIFO ring buffer whose capacity is a power of two; grows and shrinks by halves. */
class RingBuffer<T> implements QueueStore<T> {
  #items: (T | undefined)[] = new Array<T | undefined>(RING_MIN_CAPACITY).fill(undefined);
  #head = 0;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  put(item: T): void {
    if (this.#size === this.#items.length) this.#resize(this.#items.length * 2);
    const items = this.#items;
    items[(this.#head + this.#size) & (items.length - 1)] = item;
    this.#size++;
  }

  take(): T {
    const items = this.#items;
    const head = this.#head;
    const item = items[head] as T;
    items[head] = undefined;
    this.#head = (head + 1) & (items.length - 1);
    this.#size--;
    if (items.length > RING_MIN_CAPACITY && this.#size * 4 < items.length) this.#resize(items.length / 2);
    return item;
  }

  #resize(capacity: number): void {
    const old = this.#items;
    const mask = old.length - 1;
    const items = new Array<T | undefined>(capacity).fill(undefined);
    for (let i = 0; i < this.#size; i++) items[i] = old[(this.#head + i) & mask];
    this.#items = items;
    this.#head = 0;
  }
}

/** A LIFO stack. */
class Stack<T> implements QueueStore<T> {
  readonly #items: T[] = [];

  get size(): number {
    return this.#items.length;
  }

  put(item: T): void {
    this.#items.push(item);
  }

  take(): T {
    return this.#items.pop() as T;
  }
}

/**
 * A binary min-heap, stable: ties are broken by insertion order, kept in a
 * parallel array of sequence numbers (no wrapper object per item). Sifting
 * swaps, so a comparator that throws leaves every item in the heap once.
 */
class BinaryHeap<T> implements QueueStore<T> {
  readonly #items: T[] = [];
  readonly #seqs: number[] = [];
  readonly #compare: (a: T, b: T) => number;
  #seq = 0;

  constructor(compare: (a: T, b: T) => number) {
    this.#compare = compare;
  }

  get size(): number {
    return this.#items.length;
  }

  put(item: T): void {
    const items = this.#items;
    const seqs = this.#seqs;
    items.push(item);
    seqs.push(this.#seq++);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(i, parent)) break;
      this.#swap(i, parent);
      i = parent;
    }
  }

  take(): T {
    const items = this.#items;
    const seqs = this.#seqs;
    const top = items[0] as T;
    const last = items.pop() as T;
    const lastSeq = seqs.pop() as number;
    const n = items.length;
    if (n === 0) return top;
    items[0] = last;
    seqs[0] = lastSeq;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.#before(right, left) ? right : left;
      if (!this.#before(child, i)) break;
      this.#swap(i, child);
      i = child;
    }
    return top;
  }

  #before(i: number, j: number): boolean {
    const c = this.#compare(this.#items[i]!, this.#items[j]!);
    return c < 0 || (c === 0 && this.#seqs[i]! < this.#seqs[j]!);
  }

  #swap(i: number, j: number): void {
    const items = this.#items;
    const seqs = this.#seqs;
    const item = items[i]!;
    items[i] = items[j]!;
    items[j] = item;
    const seq = seqs[i]!;
    seqs[i] = seqs[j]!;
    seqs[j] = seq;
  }
}
