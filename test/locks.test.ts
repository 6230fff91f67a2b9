import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { VirtualClock } from "../src/core/clock";
import {
  BoundedSemaphore,
  Condition,
  Event,
  Lock,
  Releaser,
  Semaphore,
  TimeoutError,
  type Timeout,
} from "../src/core/locks";

/** Lets every pending promise reaction run; no timers, no sleeping. */
async function flush(turns = 20): Promise<void> {
  for (let i = 0; i < turns; i++) await Promise.resolve();
}

/** Records how a promise settled, for synchronous inspection after {@link flush}. */
class Tracked<T> {
  state: "pending" | "resolved" | "rejected" = "pending";
  value: T | undefined = undefined;
  error: unknown = undefined;
  constructor(promise: Promise<T>) {
    promise.then(
      (value) => {
        this.state = "resolved";
        this.value = value;
      },
      (error: unknown) => {
        this.state = "rejected";
        this.error = error;
      },
    );
  }
}

function track<T>(promise: Promise<T>): Tracked<T> {
  return new Tracked(promise);
}

describe("TimeoutError", () => {
  test("is an Error with a name and a stable code", () => {
    const e = new TimeoutError("Cannot wait: the timeout expired");
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("TimeoutError");
    expect(e.code).toBe("ERR_TIMEOUT");
    expect(e.message).toBe("Cannot wait: the timeout expired");
  });
});

describe("Condition", () => {
  test("wait resolves true when notified", async () => {
    const c = new Condition({ clock: new VirtualClock() });
    const w = track(c.wait());
    await flush();
    expect(w.state).toBe("pending");
    expect(c.waiting).toBe(1);
    c.notify();
    await flush();
    expect(w.state).toBe("resolved");
    expect(w.value).toBe(true);
    expect(c.waiting).toBe(0);
  });

  test("notify wakes the longest waiting first, n at a time", async () => {
    const c = new Condition({ clock: new VirtualClock() });
    const order: number[] = [];
    const all = [0, 1, 2, 3, 4].map((i) => c.wait().then(() => order.push(i)));
    c.notify(2);
    await flush();
    expect(order).toEqual([0, 1]);
    c.notify();
    await flush();
    expect(order).toEqual([0, 1, 2]);
    c.notifyAll();
    await Promise.all(all);
    expect(order).toEqual([0, 1, 2, 3, 4]);
  });

  test("notify with nobody waiting is not remembered", async () => {
    const c = new Condition({ clock: new VirtualClock() });
    c.notify(5);
    c.notifyAll();
    const w = track(c.wait());
    await flush();
    expect(w.state).toBe("pending");
  });

  test("wait resolves false when the timeout expires, and the waiter is gone", async () => {
    const clock = new VirtualClock();
    const c = new Condition({ clock });
    const early = track(c.wait(100));
    const late = track(c.wait());
    clock.advance(99);
    await flush();
    expect(early.state).toBe("pending");
    clock.advance(1);
    await flush();
    expect(early.value).toBe(false);
    expect(c.waiting).toBe(1);
    // The timed-out waiter does not absorb the notification.
    c.notify(1);
    await flush();
    expect(late.value).toBe(true);
  });

  test("accepts an absolute deadline", async () => {
    const clock = new VirtualClock(1_000);
    const c = new Condition({ clock });
    const w = track(c.wait({ deadline: 1_500 }));
    clock.advance(499);
    await flush();
    expect(w.state).toBe("pending");
    clock.advance(1);
    await flush();
    expect(w.value).toBe(false);
  });

  test("a timeout of 0 still lets a notify in the same turn win", async () => {
    const clock = new VirtualClock();
    const c = new Condition({ clock });
    const w = track(c.wait(0));
    c.notify();
    clock.advance(0);
    await flush();
    expect(w.value).toBe(true);
    expect(clock.pendingTimers).toBe(0);
  });

  test("notifying clears the waiter's timer", async () => {
    const clock = new VirtualClock();
    const c = new Condition({ clock });
    void c.wait(1000);
    expect(clock.pendingTimers).toBe(1);
    c.notify();
    expect(clock.pendingTimers).toBe(0);
  });

  test("rejects a timeout that is not a number", async () => {
    const c = new Condition({ clock: new VirtualClock() });
    await expect(c.wait(Number.NaN)).rejects.toThrow(RangeError);
    await expect(c.wait({ deadline: Number.NaN })).rejects.toThrow(/^Cannot wait for the condition: the timeout/);
    expect(c.waiting).toBe(0);
  });

  test("notify rejects a negative count", () => {
    const c = new Condition();
    expect(() => c.notify(-1)).toThrow(RangeError);
    expect(() => c.notify(Number.NaN)).toThrow(RangeError);
  });

  test("an infinite timeout sets no timer", async () => {
    const clock = new VirtualClock();
    const c = new Condition({ clock });
    const w = track(c.wait(Infinity));
    expect(clock.pendingTimers).toBe(0);
    c.notify();
    await flush();
    expect(w.value).toBe(true);
  });

  test("never asks the clock for a timer longer than 32 bits (Node fires those after 1 ms)", async () => {
    class StrictClock extends VirtualClock {
      override setTimeout(callback: () => void, ms: number) {
        if (ms > 2 ** 31 - 1) throw new RangeError(`timer of ${ms} ms would overflow`);
        return super.setTimeout(callback, ms);
      }
    }
    const clock = new StrictClock();
    const c = new Condition({ clock });
    const w = track(c.wait(5 * 2 ** 31));
    const e = track(new Event({ clock }).wait({ deadline: clock.now() + 2 ** 33 }));
    await flush();
    expect([w.state, e.state]).toEqual(["pending", "pending"]);
    clock.advance(5 * 2 ** 31 - 1);
    await flush();
    expect(w.state).toBe("pending");
    clock.advance(1);
    await flush();
    expect(w.value).toBe(false);
    clock.advance(2 ** 33);
    await flush();
    expect(e.error).toBeInstanceOf(TimeoutError);
  });

  test("a clock whose clearTimeout does nothing cannot expire a waiter twice", async () => {
    const clock = new VirtualClock();
    const lax = { now: () => clock.now(), setTimeout: clock.setTimeout.bind(clock), clearTimeout: () => {} };
    const c = new Condition({ clock: lax });
    const a = track(c.wait(10));
    const b = track(c.wait(10));
    const d = track(c.wait());
    c.notify(1); // a is notified, but its timer still fires below
    clock.advance(10); // expires b; a's stale timer must not unlink anything
    await flush();
    expect([a.value, b.value, d.state]).toEqual([true, false, "pending"]);
    expect(c.waiting).toBe(1);
    c.notify(1);
    await flush();
    expect(d.value).toBe(true);
    expect(c.waiting).toBe(0);
  });

  test("a timeout longer than a 32-bit timer does not fire early", async () => {
    const clock = new VirtualClock();
    const c = new Condition({ clock });
    const day = 24 * 3600 * 1000;
    const w = track(c.wait(30 * day));
    clock.advance(2 ** 31);
    await flush();
    expect(w.state).toBe("pending");
    clock.advance(30 * day - 2 ** 31 - 1);
    await flush();
    expect(w.state).toBe("pending");
    clock.advance(1);
    await flush();
    expect(w.value).toBe(false);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe("Event", () => {
  test("starts clear; set wakes every waiter; wait on a set event resolves at once", async () => {
    const e = new Event({ clock: new VirtualClock() });
    expect(e.isSet()).toBe(false);
    const a = track(e.wait());
    const b = track(e.wait());
    await flush();
    expect([a.state, b.state]).toEqual(["pending", "pending"]);
    e.set();
    expect(e.isSet()).toBe(true);
    await flush();
    expect([a.state, b.state]).toEqual(["resolved", "resolved"]);
    const c = track(e.wait());
    await flush();
    expect(c.state).toBe("resolved");
  });

  test("clear makes wait block again", async () => {
    const e = new Event({ clock: new VirtualClock() });
    e.set();
    e.clear();
    expect(e.isSet()).toBe(false);
    const w = track(e.wait());
    await flush();
    expect(w.state).toBe("pending");
    e.set();
    await flush();
    expect(w.state).toBe("resolved");
  });

  test("wait rejects with TimeoutError when the timeout expires", async () => {
    const clock = new VirtualClock();
    const e = new Event({ clock });
    const w = track(e.wait(50));
    clock.advance(50);
    await flush();
    expect(w.state).toBe("rejected");
    expect(w.error).toBeInstanceOf(TimeoutError);
    expect((w.error as Error).message).toBe("Cannot wait for the event: the timeout expired");
    e.set(); // must not touch the gone waiter
    await flush();
    expect(w.state).toBe("rejected");
  });

  test("wait with a timeout on a set event resolves and sets no timer", async () => {
    const clock = new VirtualClock();
    const e = new Event({ clock });
    e.set();
    await expect(e.wait(0)).resolves.toBeUndefined();
    expect(clock.pendingTimers).toBe(0);
  });

  test("set clears the timers of the waiters", () => {
    const clock = new VirtualClock();
    const e = new Event({ clock });
    void e.wait(10);
    void e.wait({ deadline: clock.now() + 20 });
    expect(clock.pendingTimers).toBe(2);
    e.set();
    expect(clock.pendingTimers).toBe(0);
  });
});

describe("Semaphore", () => {
  test("rejects an invalid initial value", () => {
    expect(() => new Semaphore(-1)).toThrow(RangeError);
    expect(() => new Semaphore(1.5)).toThrow(RangeError);
    expect(() => new Semaphore(Number.NaN)).toThrow(/^Cannot create a semaphore: the initial value NaN/);
    expect(new Semaphore(0).value).toBe(0);
    expect(new Semaphore().value).toBe(1);
  });

  test("acquire takes permits, then waits; release hands the permit to the first waiter", async () => {
    const sem = new Semaphore(2, { clock: new VirtualClock() });
    const a = track(sem.acquire());
    const b = track(sem.acquire());
    const c = track(sem.acquire());
    const d = track(sem.acquire());
    await flush();
    expect([a.state, b.state, c.state, d.state]).toEqual(["resolved", "resolved", "pending", "pending"]);
    expect(sem.value).toBe(0);
    expect(sem.waiting).toBe(2);
    a.value!.release();
    await flush();
    expect([c.state, d.state]).toEqual(["resolved", "pending"]);
    expect(sem.value).toBe(0);
    b.value!.release();
    c.value!.release();
    await flush();
    expect(d.state).toBe("resolved");
    expect(sem.value).toBe(1);
  });

  test("a releaser releases once", async () => {
    const sem = new Semaphore(1, { clock: new VirtualClock() });
    const permit = await sem.acquire();
    expect(permit).toBeInstanceOf(Releaser);
    expect(permit.released).toBe(false);
    permit.release();
    permit.release();
    permit[Symbol.dispose]();
    await permit[Symbol.asyncDispose]();
    expect(permit.released).toBe(true);
    expect(sem.value).toBe(1);
  });

  test("using and await using release at the end of the block", async () => {
    const sem = new Semaphore(1, { clock: new VirtualClock() });
    {
      using _ = await sem.acquire();
      expect(sem.value).toBe(0);
    }
    expect(sem.value).toBe(1);
    {
      await using _ = await sem.acquire();
      expect(sem.value).toBe(0);
    }
    expect(sem.value).toBe(1);
    await expect(
      (async () => {
        using _ = await sem.acquire();
        throw new Error("boom");
      })(),
    ).rejects.toThrow("boom");
    expect(sem.value).toBe(1);
  });

  test("acquire rejects with TimeoutError, and the timed-out waiter takes no permit", async () => {
    const clock = new VirtualClock();
    const sem = new Semaphore(0, { clock });
    const a = track(sem.acquire(10));
    const b = track(sem.acquire());
    clock.advance(10);
    await flush();
    expect(a.state).toBe("rejected");
    expect(a.error).toBeInstanceOf(TimeoutError);
    expect((a.error as Error).message).toBe("Cannot acquire the semaphore: the timeout expired");
    sem.release();
    await flush();
    expect(b.state).toBe("resolved");
    expect(sem.value).toBe(0);
    sem.release();
    expect(sem.value).toBe(1);
  });

  test("acquire with an expired deadline succeeds when a permit is free", async () => {
    const clock = new VirtualClock();
    const sem = new Semaphore(1, { clock });
    await expect(sem.acquire({ deadline: clock.now() - 1000 })).resolves.toBeInstanceOf(Releaser);
    const late = track(sem.acquire({ deadline: clock.now() - 1000 }));
    await flush();
    expect(late.state).toBe("pending"); // times out on the clock's next turn, not synchronously
    clock.advance(0);
    await flush();
    expect(late.error).toBeInstanceOf(TimeoutError);
  });

  test("run holds a permit while fn runs and releases it when fn settles", async () => {
    const sem = new Semaphore(1, { clock: new VirtualClock() });
    await expect(sem.run(() => 42)).resolves.toBe(42);
    await expect(
      sem.run(async () => {
        expect(sem.value).toBe(0);
        return "x";
      }),
    ).resolves.toBe("x");
    await expect(
      sem.run(async () => {
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(sem.value).toBe(1);
  });

  test("run does not call fn when the timeout expires", async () => {
    const clock = new VirtualClock();
    const sem = new Semaphore(0, { clock });
    let called = false;
    const r = track(sem.run(() => (called = true), 5));
    clock.advance(5);
    await flush();
    expect(r.error).toBeInstanceOf(TimeoutError);
    expect(called).toBe(false);
    expect(sem.value).toBe(0);
  });

  test("an Infinity semaphore never blocks", async () => {
    const sem = new Semaphore(Infinity);
    const permits = await Promise.all([sem.acquire(), sem.acquire(), sem.acquire()]);
    expect(sem.value).toBe(Infinity);
    for (const p of permits) p.release();
    expect(sem.value).toBe(Infinity);
  });

  test("rejects a bad timeout without taking a permit", async () => {
    const sem = new Semaphore(1);
    await expect(sem.acquire(Number.NaN)).rejects.toThrow(RangeError);
    expect(sem.value).toBe(1);
  });
});

describe("BoundedSemaphore", () => {
  test("release beyond the initial value throws RangeError", async () => {
    const sem = new BoundedSemaphore(2, { clock: new VirtualClock() });
    expect(() => sem.release()).toThrow(RangeError);
    expect(() => sem.release()).toThrow("Cannot release the semaphore: it was released more times than it was acquired");
    const permit = await sem.acquire();
    permit.release();
    expect(() => sem.release()).toThrow(RangeError);
    expect(sem.value).toBe(2);
  });

  test("behaves as a semaphore otherwise", async () => {
    const sem = new BoundedSemaphore(1, { clock: new VirtualClock() });
    const a = track(sem.acquire());
    const b = track(sem.acquire());
    await flush();
    expect([a.state, b.state]).toEqual(["resolved", "pending"]);
    sem.release();
    await flush();
    expect(b.state).toBe("resolved");
    sem.release();
    expect(() => sem.release()).toThrow(RangeError);
  });

  test("rejects an invalid initial value", () => {
    expect(() => new BoundedSemaphore(-2)).toThrow(RangeError);
  });
});

describe("Lock", () => {
  test("acquire locks; waiters get the lock first come, first served", async () => {
    const lock = new Lock({ clock: new VirtualClock() });
    expect(lock.locked).toBe(false);
    const a = track(lock.acquire());
    const b = track(lock.acquire());
    const c = track(lock.acquire());
    await flush();
    expect([a.state, b.state, c.state]).toEqual(["resolved", "pending", "pending"]);
    expect(lock.locked).toBe(true);
    expect(lock.waiting).toBe(2);
    lock.release();
    await flush();
    expect([b.state, c.state]).toEqual(["resolved", "pending"]);
    b.value!.release();
    await flush();
    expect(c.state).toBe("resolved");
    c.value![Symbol.dispose]();
    expect(lock.locked).toBe(false);
  });

  test("releasing an unlocked lock throws", () => {
    const lock = new Lock();
    expect(() => lock.release()).toThrow("Cannot release the lock: it is not locked");
  });

  test("acquire rejects with TimeoutError and leaves the queue", async () => {
    const clock = new VirtualClock();
    const lock = new Lock({ clock });
    const held = await lock.acquire();
    const a = track(lock.acquire(100));
    const b = track(lock.acquire(200));
    clock.advance(100);
    await flush();
    expect(a.error).toBeInstanceOf(TimeoutError);
    expect((a.error as Error).message).toBe("Cannot acquire the lock: the timeout expired");
    expect(lock.waiting).toBe(1);
    held.release();
    await flush();
    expect(b.state).toBe("resolved");
    expect(clock.pendingTimers).toBe(0);
  });

  test("run serializes critical sections", async () => {
    const lock = new Lock({ clock: new VirtualClock() });
    const events: string[] = [];
    const gate = new Event();
    const first = lock.run(async () => {
      events.push("first in");
      await gate.wait();
      events.push("first out");
    });
    const second = lock.run(() => {
      events.push("second");
      return 7;
    });
    await flush();
    expect(events).toEqual(["first in"]);
    gate.set();
    await first;
    await expect(second).resolves.toBe(7);
    expect(events).toEqual(["first in", "first out", "second"]);
    expect(lock.locked).toBe(false);
  });

  test("run releases the lock when fn throws", async () => {
    const lock = new Lock();
    await expect(lock.run(() => Promise.reject(new Error("nope")))).rejects.toThrow("nope");
    expect(lock.locked).toBe(false);
  });

  test("using releases the lock", async () => {
    const lock = new Lock();
    {
      using _ = await lock.acquire();
      expect(lock.locked).toBe(true);
    }
    expect(lock.locked).toBe(false);
  });
});

// ---------------------------------------------------------------------------
// Model-based tests: random interleavings of acquire/release/notify/timeouts
// against a simple model that grants in strict arrival order.
// ---------------------------------------------------------------------------

const timeoutArb = fc.option(fc.integer({ min: -5, max: 60 }), { nil: undefined });
const advanceArb = fc.integer({ min: 0, max: 40 });

type Expect<T> = { state: "pending" } | { state: "resolved"; value?: T } | { state: "rejected"; error: new (...a: never[]) => Error };

interface WaiterModel {
  id: number;
  deadline: number;
}

function toTimeout(now: number, timeout: number | undefined, absolute: boolean): Timeout | undefined {
  if (timeout === undefined) return undefined;
  return absolute ? { deadline: now + timeout } : timeout;
}

function deadlineOf(now: number, timeout: number | undefined): number {
  return timeout === undefined ? Infinity : now + timeout;
}

/** Removes the waiters whose deadline has passed; returns them in order. */
function expire(waiters: WaiterModel[], now: number): WaiterModel[] {
  const gone = waiters.filter((w) => w.deadline <= now);
  const kept = waiters.filter((w) => w.deadline > now);
  waiters.splice(0, waiters.length, ...kept);
  return gone;
}

function checkOutcomes<T>(expected: Map<number, Expect<T>>, actual: Map<number, Tracked<T>>): void {
  expect(actual.size).toBe(expected.size);
  const wrong: string[] = [];
  for (const [id, want] of expected) {
    const got = actual.get(id)!;
    if (got.state !== want.state) wrong.push(`op ${id}: ${got.state}, expected ${want.state}`);
    else if (want.state === "resolved" && "value" in want && got.value !== want.value) wrong.push(`op ${id}: got ${String(got.value)}, expected ${String(want.value)}`);
    else if (want.state === "rejected" && !(got.error instanceof want.error)) wrong.push(`op ${id}: rejected with ${String(got.error)}`);
  }
  expect(wrong).toEqual([]);
}

// --- Semaphore -------------------------------------------------------------

interface SemModel {
  bounded: boolean;
  initial: number;
  now: number;
  value: number;
  nextId: number;
  waiters: WaiterModel[];
  holders: number[];
  expected: Map<number, Expect<Releaser>>;
}
interface SemReal {
  clock: VirtualClock;
  sem: Semaphore;
  actual: Map<number, Tracked<Releaser>>;
}
type SemCommand = fc.AsyncCommand<SemModel, SemReal>;

async function checkSem(m: SemModel, r: SemReal): Promise<void> {
  await flush();
  expect(r.sem.value).toBe(m.value);
  expect(r.sem.waiting).toBe(m.waiters.length);
  expect(r.clock.pendingTimers).toBe(m.waiters.filter((w) => w.deadline !== Infinity).length);
  checkOutcomes(m.expected, r.actual);
  for (const id of m.holders) expect(r.actual.get(id)!.value!.released).toBe(false);
}

function grantSem(m: SemModel): void {
  const w = m.waiters.shift();
  if (w === undefined) {
    m.value++;
  } else {
    m.holders.push(w.id);
    m.expected.set(w.id, { state: "resolved" });
  }
}

class SemAcquire implements SemCommand {
  constructor(
    readonly timeout: number | undefined,
    readonly absolute: boolean,
  ) {}
  check(): boolean {
    return true;
  }
  async run(m: SemModel, r: SemReal): Promise<void> {
    const id = m.nextId++;
    r.actual.set(id, track(r.sem.acquire(toTimeout(r.clock.now(), this.timeout, this.absolute))));
    if (m.value > 0) {
      m.value--;
      m.holders.push(id);
      m.expected.set(id, { state: "resolved" });
    } else {
      m.waiters.push({ id, deadline: deadlineOf(m.now, this.timeout) });
      m.expected.set(id, { state: "pending" });
    }
    await checkSem(m, r);
  }
  toString(): string {
    return `acquire(${this.absolute ? "deadline " : ""}${this.timeout})`;
  }
}

class SemRelease implements SemCommand {
  constructor(
    readonly pick: number,
    readonly how: "release" | "dispose" | "asyncDispose" | "twice",
  ) {}
  check(m: Readonly<SemModel>): boolean {
    return m.holders.length > 0;
  }
  async run(m: SemModel, r: SemReal): Promise<void> {
    const [id] = m.holders.splice(this.pick % m.holders.length, 1);
    const permit = r.actual.get(id!)!.value!;
    const release = async (): Promise<void> => {
      if (this.how === "dispose") permit[Symbol.dispose]();
      else if (this.how === "asyncDispose") await permit[Symbol.asyncDispose]();
      else permit.release();
    };
    if (m.bounded && m.value >= m.initial) {
      // Extra raw releases made this one too many.
      await expect(release()).rejects.toThrow(RangeError);
    } else {
      await release();
      grantSem(m);
    }
    if (this.how === "twice") permit.release(); // a second release does nothing
    expect(permit.released).toBe(true);
    await checkSem(m, r);
  }
  toString(): string {
    return `releaser#${this.pick}.${this.how}()`;
  }
}

/** `sem.release()` without a releaser: always allowed, unless bounded and at its initial value. */
class SemRawRelease implements SemCommand {
  check(): boolean {
    return true;
  }
  async run(m: SemModel, r: SemReal): Promise<void> {
    if (m.bounded && m.value >= m.initial) {
      expect(() => r.sem.release()).toThrow(RangeError);
    } else {
      r.sem.release();
      grantSem(m);
    }
    await checkSem(m, r);
  }
  toString(): string {
    return "sem.release()";
  }
}

class SemAdvance implements SemCommand {
  constructor(readonly ms: number) {}
  check(): boolean {
    return true;
  }
  async run(m: SemModel, r: SemReal): Promise<void> {
    r.clock.advance(this.ms);
    m.now += this.ms;
    for (const w of expire(m.waiters, m.now)) m.expected.set(w.id, { state: "rejected", error: TimeoutError });
    await checkSem(m, r);
  }
  toString(): string {
    return `advance(${this.ms})`;
  }
}

const semCommands = fc.commands(
  [
    fc.tuple(timeoutArb, fc.boolean()).map(([t, abs]) => new SemAcquire(t, abs)),
    fc
      .tuple(fc.nat(), fc.constantFrom("release" as const, "dispose" as const, "asyncDispose" as const, "twice" as const))
      .map(([pick, how]) => new SemRelease(pick, how)),
    fc.constant(new SemRawRelease()),
    advanceArb.map((ms) => new SemAdvance(ms)),
  ],
  { maxCommands: 60, size: "max" },
);

describe("Semaphore model", () => {
  for (const bounded of [false, true]) {
    test(`${bounded ? "BoundedSemaphore" : "Semaphore"}: permits go to waiters in arrival order, timed-out waiters get none`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 0, max: 3 }), semCommands, async (initial, cmds) => {
          const clock = new VirtualClock(0);
          const sem = bounded ? new BoundedSemaphore(initial, { clock }) : new Semaphore(initial, { clock });
          const model: SemModel = {
            bounded,
            initial,
            now: 0,
            value: initial,
            nextId: 0,
            waiters: [],
            holders: [],
            expected: new Map(),
          };
          await fc.asyncModelRun(() => ({ model, real: { clock, sem, actual: new Map() } }), cmds);
        }),
        { numRuns: 150 },
      );
    });
  }
});

// --- Lock ------------------------------------------------------------------

interface LockModel {
  now: number;
  locked: boolean;
  holder: number | undefined;
  /** Holders that released with `lock.release()` instead of their releaser. */
  abandoned: Set<number>;
  nextId: number;
  waiters: WaiterModel[];
  expected: Map<number, Expect<Releaser>>;
}
interface LockReal {
  clock: VirtualClock;
  lock: Lock;
  actual: Map<number, Tracked<Releaser>>;
}
type LockCommand = fc.AsyncCommand<LockModel, LockReal>;

async function checkLock(m: LockModel, r: LockReal): Promise<void> {
  await flush();
  expect(r.lock.locked).toBe(m.locked);
  expect(r.lock.waiting).toBe(m.waiters.length);
  expect(r.clock.pendingTimers).toBe(m.waiters.filter((w) => w.deadline !== Infinity).length);
  checkOutcomes(m.expected, r.actual);
  // Mutual exclusion: at most one unreleased releaser.
  const held = [...r.actual].filter(([id, t]) => t.state === "resolved" && !t.value!.released && !m.abandoned.has(id));
  expect(held.length).toBe(m.locked ? 1 : 0);
}

class LockAcquire implements LockCommand {
  constructor(
    readonly timeout: number | undefined,
    readonly absolute: boolean,
  ) {}
  check(): boolean {
    return true;
  }
  async run(m: LockModel, r: LockReal): Promise<void> {
    const id = m.nextId++;
    r.actual.set(id, track(r.lock.acquire(toTimeout(r.clock.now(), this.timeout, this.absolute))));
    if (!m.locked) {
      m.locked = true;
      m.holder = id;
      m.expected.set(id, { state: "resolved" });
    } else {
      m.waiters.push({ id, deadline: deadlineOf(m.now, this.timeout) });
      m.expected.set(id, { state: "pending" });
    }
    await checkLock(m, r);
  }
  toString(): string {
    return `acquire(${this.absolute ? "deadline " : ""}${this.timeout})`;
  }
}

class LockRelease implements LockCommand {
  constructor(readonly how: "releaser" | "dispose" | "lock") {}
  check(m: Readonly<LockModel>): boolean {
    return m.locked;
  }
  async run(m: LockModel, r: LockReal): Promise<void> {
    const permit = r.actual.get(m.holder!)!.value!;
    if (this.how === "releaser") permit.release();
    else if (this.how === "dispose") permit[Symbol.dispose]();
    else {
      r.lock.release(); // by hand: this releaser is never used again
      m.abandoned.add(m.holder!);
    }
    const w = m.waiters.shift();
    if (w === undefined) {
      m.locked = false;
      m.holder = undefined;
    } else {
      m.holder = w.id;
      m.expected.set(w.id, { state: "resolved" });
    }
    await checkLock(m, r);
  }
  toString(): string {
    return `release via ${this.how}`;
  }
}

class LockReleaseUnlocked implements LockCommand {
  check(m: Readonly<LockModel>): boolean {
    return !m.locked;
  }
  async run(m: LockModel, r: LockReal): Promise<void> {
    expect(() => r.lock.release()).toThrow(Error);
    await checkLock(m, r);
  }
  toString(): string {
    return "release while unlocked";
  }
}

class LockAdvance implements LockCommand {
  constructor(readonly ms: number) {}
  check(): boolean {
    return true;
  }
  async run(m: LockModel, r: LockReal): Promise<void> {
    r.clock.advance(this.ms);
    m.now += this.ms;
    for (const w of expire(m.waiters, m.now)) m.expected.set(w.id, { state: "rejected", error: TimeoutError });
    await checkLock(m, r);
  }
  toString(): string {
    return `advance(${this.ms})`;
  }
}

describe("Lock model", () => {
  test("the lock goes to waiters in arrival order, one holder at a time", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.commands(
          [
            fc.tuple(timeoutArb, fc.boolean()).map(([t, abs]) => new LockAcquire(t, abs)),
            fc.constantFrom("releaser" as const, "dispose" as const, "lock" as const).map((how) => new LockRelease(how)),
            fc.constant(new LockReleaseUnlocked()),
            advanceArb.map((ms) => new LockAdvance(ms)),
          ],
          { maxCommands: 60, size: "max" },
        ),
        async (cmds) => {
          const clock = new VirtualClock(0);
          const model: LockModel = { now: 0, locked: false, holder: undefined, abandoned: new Set(), nextId: 0, waiters: [], expected: new Map() };
          await fc.asyncModelRun(() => ({ model, real: { clock, lock: new Lock({ clock }), actual: new Map() } }), cmds);
        },
      ),
      { numRuns: 150 },
    );
  });
});

// --- Condition ---------------------------------------------------------------

interface CondModel {
  now: number;
  nextId: number;
  waiters: WaiterModel[];
  expected: Map<number, Expect<boolean>>;
}
interface CondReal {
  clock: VirtualClock;
  cond: Condition;
  actual: Map<number, Tracked<boolean>>;
}
type CondCommand = fc.AsyncCommand<CondModel, CondReal>;

async function checkCond(m: CondModel, r: CondReal): Promise<void> {
  await flush();
  expect(r.cond.waiting).toBe(m.waiters.length);
  expect(r.clock.pendingTimers).toBe(m.waiters.filter((w) => w.deadline !== Infinity).length);
  checkOutcomes(m.expected, r.actual);
}

class CondWait implements CondCommand {
  constructor(
    readonly timeout: number | undefined,
    readonly absolute: boolean,
  ) {}
  check(): boolean {
    return true;
  }
  async run(m: CondModel, r: CondReal): Promise<void> {
    const id = m.nextId++;
    r.actual.set(id, track(r.cond.wait(toTimeout(r.clock.now(), this.timeout, this.absolute))));
    m.waiters.push({ id, deadline: deadlineOf(m.now, this.timeout) });
    m.expected.set(id, { state: "pending" });
    await checkCond(m, r);
  }
  toString(): string {
    return `wait(${this.absolute ? "deadline " : ""}${this.timeout})`;
  }
}

class CondNotify implements CondCommand {
  constructor(readonly n: number | "all") {}
  check(): boolean {
    return true;
  }
  async run(m: CondModel, r: CondReal): Promise<void> {
    if (this.n === "all") r.cond.notifyAll();
    else r.cond.notify(this.n);
    const woken = m.waiters.splice(0, this.n === "all" ? m.waiters.length : this.n);
    for (const w of woken) m.expected.set(w.id, { state: "resolved", value: true });
    await checkCond(m, r);
  }
  toString(): string {
    return this.n === "all" ? "notifyAll()" : `notify(${this.n})`;
  }
}

class CondAdvance implements CondCommand {
  constructor(readonly ms: number) {}
  check(): boolean {
    return true;
  }
  async run(m: CondModel, r: CondReal): Promise<void> {
    r.clock.advance(this.ms);
    m.now += this.ms;
    for (const w of expire(m.waiters, m.now)) m.expected.set(w.id, { state: "resolved", value: false });
    await checkCond(m, r);
  }
  toString(): string {
    return `advance(${this.ms})`;
  }
}

describe("Condition model", () => {
  test("notify wakes waiters in arrival order; timed-out waiters resolve false and are skipped", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.commands(
          [
            fc.tuple(timeoutArb, fc.boolean()).map(([t, abs]) => new CondWait(t, abs)),
            fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constant("all" as const)).map((n) => new CondNotify(n)),
            advanceArb.map((ms) => new CondAdvance(ms)),
          ],
          { maxCommands: 60, size: "max" },
        ),
        async (cmds) => {
          const clock = new VirtualClock(0);
          const model: CondModel = { now: 0, nextId: 0, waiters: [], expected: new Map() };
          await fc.asyncModelRun(() => ({ model, real: { clock, cond: new Condition({ clock }), actual: new Map() } }), cmds);
        },
      ),
      { numRuns: 150 },
    );
  });
});

// --- Event -------------------------------------------------------------------

interface EventModel {
  now: number;
  isSet: boolean;
  nextId: number;
  waiters: WaiterModel[];
  expected: Map<number, Expect<void>>;
}
interface EventReal {
  clock: VirtualClock;
  event: Event;
  actual: Map<number, Tracked<void>>;
}
type EventCommand = fc.AsyncCommand<EventModel, EventReal>;

async function checkEvent(m: EventModel, r: EventReal): Promise<void> {
  await flush();
  expect(r.event.isSet()).toBe(m.isSet);
  expect(r.clock.pendingTimers).toBe(m.waiters.filter((w) => w.deadline !== Infinity).length);
  checkOutcomes(m.expected, r.actual);
}

class EventWait implements EventCommand {
  constructor(readonly timeout: number | undefined) {}
  check(): boolean {
    return true;
  }
  async run(m: EventModel, r: EventReal): Promise<void> {
    const id = m.nextId++;
    r.actual.set(id, track(r.event.wait(this.timeout)));
    if (m.isSet) m.expected.set(id, { state: "resolved" });
    else {
      m.waiters.push({ id, deadline: deadlineOf(m.now, this.timeout) });
      m.expected.set(id, { state: "pending" });
    }
    await checkEvent(m, r);
  }
  toString(): string {
    return `wait(${this.timeout})`;
  }
}

class EventSet implements EventCommand {
  constructor(readonly set: boolean) {}
  check(): boolean {
    return true;
  }
  async run(m: EventModel, r: EventReal): Promise<void> {
    if (this.set) {
      r.event.set();
      m.isSet = true;
      for (const w of m.waiters.splice(0)) m.expected.set(w.id, { state: "resolved" });
    } else {
      r.event.clear();
      m.isSet = false;
    }
    await checkEvent(m, r);
  }
  toString(): string {
    return this.set ? "set()" : "clear()";
  }
}

class EventAdvance implements EventCommand {
  constructor(readonly ms: number) {}
  check(): boolean {
    return true;
  }
  async run(m: EventModel, r: EventReal): Promise<void> {
    r.clock.advance(this.ms);
    m.now += this.ms;
    for (const w of expire(m.waiters, m.now)) m.expected.set(w.id, { state: "rejected", error: TimeoutError });
    await checkEvent(m, r);
  }
  toString(): string {
    return `advance(${this.ms})`;
  }
}

describe("Event model", () => {
  test("set wakes every current waiter; timed-out waiters reject", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.commands(
          [
            timeoutArb.map((t) => new EventWait(t)),
            fc.boolean().map((set) => new EventSet(set)),
            advanceArb.map((ms) => new EventAdvance(ms)),
          ],
          { maxCommands: 50, size: "max" },
        ),
        async (cmds) => {
          const clock = new VirtualClock(0);
          const model: EventModel = { now: 0, isSet: false, nextId: 0, waiters: [], expected: new Map() };
          await fc.asyncModelRun(() => ({ model, real: { clock, event: new Event({ clock }), actual: new Map() } }), cmds);
        },
      ),
      { numRuns: 100 },
    );
  });
});
