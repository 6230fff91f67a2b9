/**
 * Synchronization primitives for coroutines, after Tornado's `tornado.locks`:
 * {@link Condition}, {@link Event}, {@link Semaphore},
 * {@link BoundedSemaphore} and {@link Lock}. They coordinate async functions
 * running on one event loop; they are not thread locks.
 *
 * How this works: every primitive keeps its waiters in a {@link WaitQueue},
 * an intrusive linked list served first come, first served. A waiter that
 * times out is unlinked at once, so it never receives a notification, a
 * permit or an item meant for the next one. Timers come from an injected
 * {@link Clock} (`{ clock }` in every constructor, {@link systemClock} by
 * default), so tests drive timeouts with a `VirtualClock` and never sleep.
 *
 * ## Timeouts
 *
 * Tornado takes either a `timedelta` (relative) or a float deadline in
 * `IOLoop.time()` terms (absolute). A {@link Timeout} here is either:
 *
 * - a number: milliseconds from now, like Tornado's `timedelta` and like
 *   `setTimeout`; `Infinity` waits forever;
 * - `{ deadline }`: an absolute time in `clock.now()` terms, like Tornado's
 *   float deadline.
 *
 * Leaving it out waits forever. As in Tornado, a wait that can be satisfied
 * at once succeeds even with a timeout of 0 or a deadline in the past;
 * otherwise such a timeout expires on the clock's next timer turn, not
 * synchronously. Negative delays count as 0; `NaN` is a `RangeError`.
 *
 * @module
 */

import { systemClock, type Clock, type TimerHandle } from "./clock";

/**
 * How long to wait: milliseconds from now, or an absolute deadline in
 * `clock.now()` terms. See the module documentation.
 *
 * @example
 * ```ts
 * await lock.acquire(500);                              // 500 ms from now
 * await lock.acquire({ deadline: clock.now() + 500 });  // the same, absolute
 * ```
 */
export type Timeout = number | { readonly deadline: number };

/** Options shared by every primitive in this module. */
export interface LockOptions {
  /**
   * Source of time for timeouts.
   * @default systemClock
   */
  clock?: Clock;
}

/**
 * A wait gave up because its {@link Timeout} expired: Tornado's
 * `tornado.util.TimeoutError`. Thrown by {@link Event.wait},
 * {@link Semaphore.acquire}, {@link Lock.acquire} and the queue methods.
 * ({@link Condition.wait} resolves `false` instead, as in Tornado.)
 *
 * @example
 * ```ts
 * try {
 *   await event.wait(1000);
 * } catch (e) {
 *   if (e instanceof TimeoutError) console.log(e.code); // "ERR_TIMEOUT"
 * }
 * ```
 */
export class TimeoutError extends Error {
  override name = "TimeoutError";
  /** A stable machine-readable code. */
  readonly code = "ERR_TIMEOUT";
}

/**
 * Node.js and browsers store timer delays in a signed 32-bit integer and fire
 * longer ones after 1 ms; longer waits are split into timers of this length.
 */
const MAX_TIMER_DELAY = 2 ** 31 - 1;

/** One pending call, linked into a {@link WaitQueue}. @internal */
interface Waiter<V, D> {
  prev: Waiter<V, D> | undefined;
  next: Waiter<V, D> | undefined;
  /** Still linked into its queue: neither settled nor timed out. */
  queued: boolean;
  /** What the caller left with the wait (an item to put, for queues). */
  readonly data: D;
  readonly resolve: (value: V) => void;
  readonly reject: (reason: unknown) => void;
  timer: TimerHandle | undefined;
}

/**
 * A first-come, first-served list of pending calls with timeouts: the
 * building block of every primitive here and of the queues. Not part of the
 * public API.
 *
 * @internal
 * @example
 * ```ts
 * const waiters = new WaitQueue<boolean>(systemClock, "wait for the condition", false);
 * const p = waiters.wait(1000, undefined); // resolves true below, or false after 1 s
 * waiters.resolveFirst(true);
 * ```
 */
export class WaitQueue<V, D = undefined> {
  #head: Waiter<V, D> | undefined = undefined;
  #tail: Waiter<V, D> | undefined = undefined;
  #size = 0;
  readonly #clock: Clock;
  readonly #action: string;
  readonly #timesOutWith: boolean;
  readonly #timeoutValue: V | undefined;

  /**
   * @param clock The source of timers.
   * @param action What a waiter is doing, for error messages ("acquire the lock").
   * @param timeoutValue If given, a waiter that times out resolves with this
   *   value; otherwise it rejects with a {@link TimeoutError}.
   */
  constructor(clock: Clock, action: string, ...timeoutValue: [] | [V]) {
    this.#clock = clock;
    this.#action = action;
    this.#timesOutWith = timeoutValue.length > 0;
    this.#timeoutValue = timeoutValue[0];
  }

  /** How many calls are waiting. */
  get size(): number {
    return this.#size;
  }

  /** The data of the first waiter; only valid when {@link size} > 0. */
  get firstData(): D {
    return this.#head!.data;
  }

  /**
   * Resolves `timeout` into an absolute deadline, or returns an error for a
   * timeout that is not a number. `undefined` means no deadline.
   */
  deadlineOf(timeout: Timeout | undefined): number | RangeError {
    if (timeout === undefined) return Infinity;
    const deadline = typeof timeout === "number" ? this.#clock.now() + timeout : timeout?.deadline;
    if (typeof deadline !== "number" || Number.isNaN(deadline)) {
      return new RangeError(`Cannot ${this.#action}: the timeout ${describe(timeout)} is not a number of milliseconds or a { deadline }`);
    }
    return deadline;
  }

  /**
   * Appends a waiter and returns its promise. It settles through
   * {@link resolveFirst}/{@link resolveAll}, or when `deadline` passes.
   */
  wait(deadline: number, data: D): Promise<V> {
    return new Promise<V>((resolve, reject) => {
      const waiter: Waiter<V, D> = { prev: this.#tail, next: undefined, queued: true, data, resolve, reject, timer: undefined };
      if (this.#tail === undefined) this.#head = waiter;
      else this.#tail.next = waiter;
      this.#tail = waiter;
      this.#size++;
      if (deadline !== Infinity) this.#arm(waiter, deadline);
    });
  }

  /** Settles the first waiter with `value`; returns its data. Requires {@link size} > 0. */
  resolveFirst(value: V): D {
    const waiter = this.#head!;
    this.#unlink(waiter);
    waiter.resolve(value);
    return waiter.data;
  }

  /** Settles every waiter with `value`, first come first. */
  resolveAll(value: V): void {
    while (this.#head !== undefined) this.resolveFirst(value);
  }

  #arm(waiter: Waiter<V, D>, deadline: number): void {
    const delay = deadline - this.#clock.now();
    if (delay > MAX_TIMER_DELAY) {
      waiter.timer = this.#clock.setTimeout(() => this.#arm(waiter, deadline), MAX_TIMER_DELAY);
    } else {
      waiter.timer = this.#clock.setTimeout(() => this.#expire(waiter), delay > 0 ? delay : 0);
    }
  }

  #expire(waiter: Waiter<V, D>): void {
    if (!waiter.queued) return;
    waiter.timer = undefined;
    this.#unlink(waiter);
    if (this.#timesOutWith) waiter.resolve(this.#timeoutValue as V);
    else waiter.reject(new TimeoutError(`Cannot ${this.#action}: the timeout expired`));
  }

  #unlink(waiter: Waiter<V, D>): void {
    const { prev, next } = waiter;
    if (prev === undefined) this.#head = next;
    else prev.next = next;
    if (next === undefined) this.#tail = prev;
    else next.prev = prev;
    waiter.prev = waiter.next = undefined;
    waiter.queued = false;
    this.#size--;
    if (waiter.timer !== undefined) {
      this.#clock.clearTimeout(waiter.timer);
      waiter.timer = undefined;
    }
  }
}

function describe(value: unknown): string {
  if (typeof value === "object" && value !== null) {
    try {
      return JSON.stringify(value);
    } catch {
      return String(value);
    }
  }
  return String(value);
}

/**
 * A held permit of a {@link Semaphore} or {@link Lock}, returned by
 * `acquire`: Tornado's `_ReleasingContextManager`. Release it once, by
 * calling {@link Releaser.release} or by letting a `using` (or `await using`)
 * declaration dispose of it. Releasing it again does nothing, so an explicit
 * `release()` inside a `using` block is safe. It calls its semaphore's or
 * lock's `release()`, as Tornado's does: do not also release the same hold
 * with `sem.release()` or `lock.release()`.
 *
 * @example
 * ```ts
 * {
 *   using _ = await lock.acquire();
 *   // ... the lock is held here ...
 * } // released here, even if the block throws
 * ```
 */
export class Releaser implements Disposable, AsyncDisposable {
  #target: { release(): void } | undefined;

  /** @param target What {@link Releaser.release} releases, once. */
  constructor(target: { release(): void }) {
    this.#target = target;
  }

  /**
   * Whether this permit was released already.
   *
   * @example
   * ```ts
   * const permit = await lock.acquire();
   * permit.release();
   * permit.released; // true
   * ```
   */
  get released(): boolean {
    return this.#target === undefined;
  }

  /**
   * Releases the permit, the first time only.
   *
   * @example
   * ```ts
   * const permit = await semaphore.acquire();
   * try { await work(); } finally { permit.release(); }
   * ```
   */
  release(): void {
    const target = this.#target;
    if (target === undefined) return;
    this.#target = undefined;
    target.release();
  }

  /**
   * Same as {@link Releaser.release}; called by `using`.
   *
   * @example
   * ```ts
   * using _ = await lock.acquire();
   * ```
   */
  [Symbol.dispose](): void {
    this.release();
  }

  /**
   * Same as {@link Releaser.release}; called by `await using`.
   *
   * @example
   * ```ts
   * await using _ = await lock.acquire();
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    try {
      this.release();
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }
}

/**
 * A condition allows one or more coroutines to wait until notified: Tornado's
 * `tornado.locks.Condition`. Unlike a thread condition variable it has no
 * lock of its own. Waiters are woken first come, first served.
 *
 * @example
 * ```ts
 * const condition = new Condition();
 * async function waiter() {
 *   console.log("I'll wait right here");
 *   await condition.wait();
 *   console.log("I'm done waiting");
 * }
 * async function notifier() {
 *   console.log("About to notify");
 *   condition.notify();
 *   console.log("Done notifying");
 * }
 * await Promise.all([waiter(), notifier()]);
 * ```
 */
export class Condition {
  readonly #waiters: WaitQueue<boolean>;

  /** @param options `{ clock }` for timeouts; defaults to {@link systemClock}. */
  constructor(options: LockOptions = {}) {
    this.#waiters = new WaitQueue<boolean>(options.clock ?? systemClock, "wait for the condition", false);
  }

  /**
   * How many coroutines are waiting to be notified (timed-out ones are gone).
   *
   * @example
   * ```ts
   * void condition.wait();
   * condition.waiting; // 1
   * ```
   */
  get waiting(): number {
    return this.#waiters.size;
  }

  /**
   * Waits for {@link notify}. Resolves `true` when notified, or `false` if
   * `timeout` expires first (as Tornado's `Condition.wait`). Rejects with a
   * `RangeError` for a timeout that is not a number.
   *
   * @example
   * ```ts
   * if (!(await condition.wait(1000))) console.log("not notified within a second");
   * ```
   */
  wait(timeout?: Timeout): Promise<boolean> {
    const deadline = this.#waiters.deadlineOf(timeout);
    if (typeof deadline !== "number") return Promise.reject(deadline);
    return this.#waiters.wait(deadline, undefined);
  }

  /**
   * Wakes up to `n` waiters, the longest waiting first. Waiters that timed
   * out are gone and are not counted.
   *
   * @example
   * ```ts
   * condition.notify(2); // wake the two oldest waiters
   * ```
   */
  notify(n = 1): void {
    if (!(n >= 0)) throw new RangeError(`Cannot notify the condition: ${n} is not a non-negative number of waiters`);
    const waiters = this.#waiters;
    for (let i = 0; i < n && waiters.size > 0; i++) waiters.resolveFirst(true);
  }

  /**
   * Wakes every waiter.
   *
   * @example
   * ```ts
   * condition.notifyAll();
   * ```
   */
  notifyAll(): void {
    this.#waiters.resolveAll(true);
  }
}

/**
 * An event blocks coroutines until its internal flag is set: Tornado's
 * `tornado.locks.Event`. The flag starts false; {@link set} makes it true and
 * wakes every waiter, {@link clear} makes it false again.
 *
 * @example
 * ```ts
 * const event = new Event();
 * async function waiter() {
 *   console.log("Waiting for event");
 *   await event.wait();
 *   console.log("Not waiting this time");
 *   await event.wait();
 *   console.log("Done");
 * }
 * async function setter() {
 *   console.log("About to set the event");
 *   event.set();
 * }
 * await Promise.all([waiter(), setter()]);
 * ```
 */
export class Event {
  #value = false;
  readonly #waiters: WaitQueue<void>;

  /** @param options `{ clock }` for timeouts; defaults to {@link systemClock}. */
  constructor(options: LockOptions = {}) {
    this.#waiters = new WaitQueue<void>(options.clock ?? systemClock, "wait for the event");
  }

  /**
   * Whether the flag is set.
   *
   * @example
   * ```ts
   * if (!event.isSet()) await event.wait();
   * ```
   */
  isSet(): boolean {
    return this.#value;
  }

  /**
   * Sets the flag and wakes every waiter. Calls to {@link wait} made while
   * the flag is set resolve at once.
   *
   * @example
   * ```ts
   * event.set();
   * ```
   */
  set(): void {
    if (this.#value) return;
    this.#value = true;
    this.#waiters.resolveAll(undefined);
  }

  /**
   * Clears the flag; later calls to {@link wait} block until {@link set}.
   *
   * @example
   * ```ts
   * event.clear();
   * ```
   */
  clear(): void {
    this.#value = false;
  }

  /**
   * Resolves once the flag is set, at once if it is set now. Rejects with a
   * {@link TimeoutError} if `timeout` expires first (as Tornado), or with a
   * `RangeError` for a timeout that is not a number.
   *
   * @example
   * ```ts
   * await event.wait(5000); // throws TimeoutError after 5 s unless set
   * ```
   */
  wait(timeout?: Timeout): Promise<void> {
    const deadline = this.#waiters.deadlineOf(timeout);
    if (typeof deadline !== "number") return Promise.reject(deadline);
    if (this.#value) return Promise.resolve();
    return this.#waiters.wait(deadline, undefined);
  }
}

function checkPermits(value: number, what: string): void {
  if (!(value >= 0) || !(Number.isInteger(value) || value === Infinity)) {
    throw new RangeError(`Cannot create a ${what}: the initial value ${value} is not a non-negative integer or Infinity`);
  }
}

/**
 * A counter of permits: Tornado's `tornado.locks.Semaphore`.
 * {@link acquire} takes a permit, waiting while none is left; {@link release}
 * gives one back and hands it to the longest waiter. Use `Infinity` for a
 * semaphore that never blocks.
 *
 * Three ways to hold a permit, from the most idiomatic:
 *
 * - `using _ = await sem.acquire();` releases when the block exits (the
 *   {@link Releaser} is `Disposable`; `await using` works too);
 * - `await sem.run(fn)` runs `fn` holding a permit (Tornado's
 *   `async with sem:`);
 * - `await sem.acquire()` and a later `sem.release()`, by hand.
 *
 * @example
 * ```ts
 * const sem = new Semaphore(2);
 * async function worker(id: number) {
 *   using _ = await sem.acquire();
 *   console.log("Worker", id, "is working");
 *   await work(id);
 *   console.log("Worker", id, "is done");
 * } // the permit goes back here
 * await Promise.all([worker(0), worker(1), worker(2)]); // worker 2 waits for a permit
 * ```
 */
export class Semaphore {
  #value: number;
  readonly #waiters: WaitQueue<Releaser>;

  /**
   * @param value The initial number of permits: a non-negative integer or
   *   `Infinity`, else a `RangeError`.
   * @param options `{ clock }` for timeouts; defaults to {@link systemClock}.
   */
  constructor(value = 1, options: LockOptions = {}) {
    checkPermits(value, "semaphore");
    this.#value = value;
    this.#waiters = new WaitQueue<Releaser>(options.clock ?? systemClock, "acquire the semaphore");
  }

  /**
   * How many permits are free now.
   *
   * @example
   * ```ts
   * const sem = new Semaphore(2);
   * await sem.acquire();
   * sem.value; // 1
   * ```
   */
  get value(): number {
    return this.#value;
  }

  /**
   * How many coroutines are waiting for a permit.
   *
   * @example
   * ```ts
   * if (sem.waiting > 100) console.warn("the pool is saturated");
   * ```
   */
  get waiting(): number {
    return this.#waiters.size;
  }

  /**
   * Takes a permit: at once if one is free, else after the coroutines that
   * are already waiting. Resolves to a {@link Releaser} that gives the permit
   * back. Rejects with a {@link TimeoutError} if `timeout` expires first (the
   * waiter is then gone and takes no permit), or with a `RangeError` for a
   * timeout that is not a number.
   *
   * @example
   * ```ts
   * using _ = await sem.acquire(1000); // TimeoutError if no permit within 1 s
   * ```
   */
  acquire(timeout?: Timeout): Promise<Releaser> {
    const deadline = this.#waiters.deadlineOf(timeout);
    if (typeof deadline !== "number") return Promise.reject(deadline);
    // Waiters exist only while no permit is free, so this never jumps the queue.
    if (this.#value > 0) {
      this.#value--;
      return Promise.resolve(new Releaser(this));
    }
    return this.#waiters.wait(deadline, undefined);
  }

  /**
   * Gives a permit back. If coroutines are waiting, the longest waiting one
   * takes it.
   *
   * @example
   * ```ts
   * await sem.acquire();
   * try { await work(); } finally { sem.release(); }
   * ```
   */
  release(): void {
    if (this.#waiters.size > 0) this.#waiters.resolveFirst(new Releaser(this));
    else this.#value++;
  }

  /**
   * Runs `fn` holding a permit and gives the permit back when it settles,
   * like Tornado's `async with sem:`. Resolves or rejects as `fn` does, or
   * with a {@link TimeoutError} if no permit came within `timeout` (then `fn`
   * is not called).
   *
   * @example
   * ```ts
   * const body = await sem.run(() => fetchPage(url), 5000);
   * ```
   */
  async run<R>(fn: () => R | PromiseLike<R>, timeout?: Timeout): Promise<Awaited<R>> {
    const permit = await this.acquire(timeout);
    try {
      return await fn();
    } finally {
      permit.release();
    }
  }
}

/**
 * A {@link Semaphore} that refuses to be released more times than it was
 * acquired: Tornado's `tornado.locks.BoundedSemaphore`. Such a release throws
 * a `RangeError` (Tornado's `ValueError`), which usually finds a bug. With an
 * initial value of `Infinity` no release can be detected as extra.
 *
 * @example
 * ```ts
 * const sem = new BoundedSemaphore(1);
 * sem.release(); // RangeError: Cannot release the semaphore: it was released more times than it was acquired
 * ```
 */
export class BoundedSemaphore extends Semaphore {
  readonly #initial: number;

  /**
   * @param value The initial and maximum number of permits.
   * @param options `{ clock }` for timeouts; defaults to {@link systemClock}.
   */
  constructor(value = 1, options: LockOptions = {}) {
    super(value, options);
    this.#initial = value;
  }

  /**
   * Gives a permit back; throws a `RangeError` if that would make more
   * permits than the initial value.
   *
   * @example
   * ```ts
   * await sem.acquire();
   * sem.release(); // fine
   * sem.release(); // RangeError
   * ```
   */
  override release(): void {
    if (this.value >= this.#initial && this.#initial !== Infinity) {
      throw new RangeError("Cannot release the semaphore: it was released more times than it was acquired");
    }
    super.release();
  }
}

/**
 * A lock for coroutines: Tornado's `tornado.locks.Lock`. It starts unlocked;
 * {@link acquire} locks it, waiting while another coroutine holds it, and
 * waiters get it first come, first served. Releasing an unlocked lock throws
 * (Tornado's `RuntimeError`). Any coroutine may release it, not only the one
 * that locked it.
 *
 * @example
 * ```ts
 * const lock = new Lock();
 * async function f() {
 *   using _ = await lock.acquire();
 *   // Do something holding the lock.
 * } // now the lock is released
 *
 * // or, like Tornado's `async with lock:`
 * await lock.run(async () => {
 *   // Do something holding the lock.
 * });
 * ```
 */
export class Lock {
  #locked = false;
  readonly #waiters: WaitQueue<Releaser>;

  /** @param options `{ clock }` for timeouts; defaults to {@link systemClock}. */
  constructor(options: LockOptions = {}) {
    this.#waiters = new WaitQueue<Releaser>(options.clock ?? systemClock, "acquire the lock");
  }

  /**
   * Whether some coroutine holds the lock.
   *
   * @example
   * ```ts
   * const permit = await lock.acquire();
   * lock.locked; // true
   * permit.release();
   * lock.locked; // false
   * ```
   */
  get locked(): boolean {
    return this.#locked;
  }

  /**
   * How many coroutines are waiting for the lock.
   *
   * @example
   * ```ts
   * void lock.acquire();
   * void lock.acquire();
   * lock.waiting; // 1
   * ```
   */
  get waiting(): number {
    return this.#waiters.size;
  }

  /**
   * Locks the lock: at once if it is free, else after the coroutines that
   * are already waiting. Resolves to a {@link Releaser} that unlocks it.
   * Rejects with a {@link TimeoutError} if `timeout` expires first, or with a
   * `RangeError` for a timeout that is not a number.
   *
   * @example
   * ```ts
   * using _ = await lock.acquire({ deadline: clock.now() + 1000 });
   * ```
   */
  acquire(timeout?: Timeout): Promise<Releaser> {
    const deadline = this.#waiters.deadlineOf(timeout);
    if (typeof deadline !== "number") return Promise.reject(deadline);
    if (!this.#locked) {
      this.#locked = true;
      return Promise.resolve(new Releaser(this));
    }
    return this.#waiters.wait(deadline, undefined);
  }

  /**
   * Unlocks the lock, handing it to the longest waiting coroutine if any.
   * Throws an `Error` if the lock is not locked.
   *
   * @example
   * ```ts
   * await lock.acquire();
   * try { await work(); } finally { lock.release(); }
   * ```
   */
  release(): void {
    if (!this.#locked) throw new Error("Cannot release the lock: it is not locked");
    if (this.#waiters.size > 0) this.#waiters.resolveFirst(new Releaser(this));
    else this.#locked = false;
  }

  /**
   * Runs `fn` holding the lock and unlocks it when `fn` settles, like
   * Tornado's `async with lock:`. Resolves or rejects as `fn` does, or with
   * a {@link TimeoutError} if the lock was not had within `timeout` (then
   * `fn` is not called).
   *
   * @example
   * ```ts
   * await lock.run(async () => {
   *   balance += await fetchDeposit();
   * });
   * ```
   */
  async run<R>(fn: () => R | PromiseLike<R>, timeout?: Timeout): Promise<Awaited<R>> {
    const permit = await this.acquire(timeout);
    try {
      return await fn();
    } finally {
      permit.release();
    }
  }
}
