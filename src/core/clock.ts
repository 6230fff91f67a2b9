/**
 * Time, injected. Engines never read the wall clock themselves; drivers take
 * a {@link Clock}, and tests hand them a {@link VirtualClock} so that every
 * timeout is exercised without sleeping.
 *
 * @module
 */

/** An opaque handle returned by {@link Clock.setTimeout}. */
export type TimerHandle = { readonly __timer: true } | object;

/** The source of time and timers for drivers and transports. */
export interface Clock {
  /** Milliseconds since the Unix epoch (virtual clocks may start anywhere). */
  now(): number;
  /** Calls `callback` once after `ms` milliseconds. */
  setTimeout(callback: () => void, ms: number): TimerHandle;
  /** Cancels a timer; a handle that already fired or was cleared is ignored. */
  clearTimeout(handle: TimerHandle): void;
}

/**
 * The real clock: `Date.now()` and the host's timers.
 *
 * @example
 * ```ts
 * const t = systemClock.setTimeout(() => console.log("tick"), 1000);
 * systemClock.clearTimeout(t);
 * ```
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms) as unknown as TimerHandle,
  clearTimeout: (handle) => globalThis.clearTimeout(handle as Parameters<typeof globalThis.clearTimeout>[0]),
};

interface VirtualTimer {
  readonly at: number;
  readonly seq: number;
  readonly callback: () => void;
  cancelled: boolean;
}

/**
 * A clock that moves only when told to. Timers fire in order of due time, and
 * in order of creation for equal times; a timer set by a firing timer runs in
 * the same `advance` if it falls due within it.
 *
 * @example
 * ```ts
 * const clock = new VirtualClock();
 * let fired = false;
 * clock.setTimeout(() => { fired = true }, 5000);
 * clock.advance(4999); // fired === false
 * clock.advance(1);    // fired === true
 * ```
 */
export class VirtualClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: VirtualTimer[] = [];

  /** @param start The initial value of `now()`; defaults to 2026-01-01T00:00:00Z. */
  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0;
    const timer: VirtualTimer = { at: this.#now + delay, seq: this.#seq++, callback, cancelled: false };
    // Keep the list sorted by (at, seq); new timers usually go at the end.
    let i = this.#timers.length;
    while (i > 0) {
      const prev = this.#timers[i - 1]!;
      if (prev.at <= timer.at) break;
      i--;
    }
    this.#timers.splice(i, 0, timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    const timer = handle as VirtualTimer;
    if (timer && typeof timer === "object" && "cancelled" in timer) {
      timer.cancelled = true;
      const i = this.#timers.indexOf(timer);
      if (i >= 0) this.#timers.splice(i, 1);
    }
  }

  /** How many timers are waiting to fire. */
  get pendingTimers(): number {
    return this.#timers.length;
  }

  /** The due time of the next timer, or `undefined` if none is set. */
  get nextTimerAt(): number | undefined {
    return this.#timers[0]?.at;
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due, in order.
   * Returns the number of timers fired.
   */
  advance(ms: number): number {
    if (!(ms >= 0)) throw new RangeError(`Cannot advance the clock: ${ms} is not a non-negative number`);
    const target = this.#now + ms;
    let fired = 0;
    for (;;) {
      const next = this.#timers[0];
      if (next === undefined || next.at > target) break;
      this.#timers.shift();
      this.#now = Math.max(this.#now, next.at);
      fired++;
      next.callback();
    }
    this.#now = target;
    return fired;
  }

  /** Fires timers one at a time until none is left, up to `limit` of them. */
  runAll(limit = 10_000): number {
    let fired = 0;
    while (this.#timers.length > 0) {
      if (fired >= limit) throw new Error(`Cannot run all timers: more than ${limit} fired, a timer keeps rescheduling itself`);
      const next = this.#timers[0]!;
      fired += this.advance(Math.max(0, next.at - this.#now));
    }
    return fired;
  }
}
