import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { VirtualClock } from "../src/core/clock";
import { TimeoutError, type Timeout } from "../src/core/locks";
import { LifoQueue, PriorityQueue, Queue, QueueEmpty, QueueFull, type QueueOptions, type QueueStore } from "../src/core/queues";

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

function drain<T>(q: Queue<T>): T[] {
  const out: T[] = [];
  while (!q.empty()) out.push(q.getNowait());
  return out;
}

describe("Queue construction", () => {
  test("is unbounded by default", () => {
    const q = new Queue<number>();
    expect(q.maxsize).toBe(Infinity);
    for (let i = 0; i < 1000; i++) q.putNowait(i);
    expect(q.full()).toBe(false);
    expect(q.qsize()).toBe(1000);
  });

  test("rejects maxsize 0 (unbounded is Infinity) and other invalid values", () => {
    expect(() => new Queue({ maxsize: 0 })).toThrow(
      "Cannot create a queue: maxsize 0 is not a positive integer or Infinity (use Infinity for an unbounded queue)",
    );
    for (const maxsize of [-1, 1.5, Number.NaN, -Infinity]) {
      expect(() => new Queue({ maxsize })).toThrow(RangeError);
      expect(() => new PriorityQueue({ maxsize })).toThrow(RangeError);
      expect(() => new LifoQueue({ maxsize })).toThrow(RangeError);
    }
    expect(new Queue({ maxsize: 3 }).maxsize).toBe(3);
    expect(new Queue({ maxsize: Infinity }).maxsize).toBe(Infinity);
  });
});

describe("Queue", () => {
  test("putNowait and getNowait are first in, first out", () => {
    const q = new Queue<string>();
    expect(q.empty()).toBe(true);
    q.putNowait("a");
    q.putNowait("b");
    q.putNowait("c");
    expect(q.qsize()).toBe(3);
    expect(q.empty()).toBe(false);
    expect(drain(q)).toEqual(["a", "b", "c"]);
  });

  test("getNowait on an empty queue throws QueueEmpty", () => {
    const q = new Queue<number>();
    let error: unknown;
    try {
      q.getNowait();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(QueueEmpty);
    expect((error as QueueEmpty).code).toBe("ERR_QUEUE_EMPTY");
    expect((error as QueueEmpty).name).toBe("QueueEmpty");
    expect((error as Error).message).toBe("Cannot get from the queue: it is empty");
  });

  test("putNowait on a full queue throws QueueFull and does not add the item", () => {
    const q = new Queue<number>({ maxsize: 2 });
    q.putNowait(1);
    q.putNowait(2);
    expect(q.full()).toBe(true);
    expect(() => q.putNowait(3)).toThrow(QueueFull);
    expect(() => q.putNowait(3)).toThrow("Cannot put into the queue: it is full (maxsize 2)");
    expect(q.qsize()).toBe(2);
    expect(q.unfinishedTasks).toBe(2);
    expect(drain(q)).toEqual([1, 2]);
  });

  test("get waits for an item; puts go to the longest waiting getter", async () => {
    const q = new Queue<string>({ clock: new VirtualClock() });
    const a = track(q.get());
    const b = track(q.get());
    await flush();
    expect([a.state, b.state]).toEqual(["pending", "pending"]);
    q.putNowait("x");
    await flush();
    expect(a.value).toBe("x");
    expect(b.state).toBe("pending");
    expect(q.qsize()).toBe(0);
    await q.put("y");
    await flush();
    expect(b.value).toBe("y");
  });

  test("put waits while full; gets let the longest waiting putter in", async () => {
    const q = new Queue<number>({ maxsize: 1, clock: new VirtualClock() });
    await q.put(1);
    const p2 = track(q.put(2));
    const p3 = track(q.put(3));
    await flush();
    expect([p2.state, p3.state]).toEqual(["pending", "pending"]);
    expect(q.unfinishedTasks).toBe(1); // waiting items are not tasks yet
    expect(await q.get()).toBe(1);
    await flush();
    expect([p2.state, p3.state]).toEqual(["resolved", "pending"]);
    expect(q.qsize()).toBe(1);
    expect(q.getNowait()).toBe(2);
    await flush();
    expect(p3.state).toBe("resolved");
    expect(q.getNowait()).toBe(3);
    expect(q.unfinishedTasks).toBe(3);
  });

  test("a getter that timed out never receives an item", async () => {
    const clock = new VirtualClock();
    const q = new Queue<string>({ clock });
    const a = track(q.get(100));
    const b = track(q.get());
    clock.advance(100);
    await flush();
    expect(a.state).toBe("rejected");
    expect(a.error).toBeInstanceOf(TimeoutError);
    expect((a.error as Error).message).toBe("Cannot get from the queue: the timeout expired");
    q.putNowait("x");
    await flush();
    expect(b.value).toBe("x");
    q.putNowait("y");
    expect(q.qsize()).toBe(1);
    expect(clock.pendingTimers).toBe(0);
  });

  test("a putter that timed out never adds its item", async () => {
    const clock = new VirtualClock();
    const q = new Queue<string>({ maxsize: 1, clock });
    q.putNowait("a");
    const p = track(q.put("b", { deadline: clock.now() + 10 }));
    clock.advance(10);
    await flush();
    expect(p.error).toBeInstanceOf(TimeoutError);
    expect((p.error as Error).message).toBe("Cannot put into the queue: the timeout expired");
    expect(q.getNowait()).toBe("a");
    expect(q.empty()).toBe(true);
    expect(q.unfinishedTasks).toBe(1);
  });

  test("get with a timeout takes an available item without setting a timer", async () => {
    const clock = new VirtualClock();
    const q = new Queue<number>({ clock });
    q.putNowait(1);
    expect(await q.get(0)).toBe(1);
    await q.put(2, -5);
    expect(clock.pendingTimers).toBe(0);
  });

  test("a zero timeout expires on the clock's next turn, so a put in the same turn wins", async () => {
    const clock = new VirtualClock();
    const q = new Queue<number>({ clock });
    const g = track(q.get(0));
    q.putNowait(7);
    clock.advance(0);
    await flush();
    expect(g.value).toBe(7);
  });

  test("rejects a timeout that is not a number", async () => {
    const q = new Queue<number>({ maxsize: 1 });
    await expect(q.get(Number.NaN)).rejects.toThrow(RangeError);
    await expect(q.put(1, { deadline: Number.NaN })).rejects.toThrow(/^Cannot put into the queue: the timeout/);
    await expect(q.join(Number.NaN)).rejects.toThrow(RangeError);
    expect(q.qsize()).toBe(0);
  });

  test("taskDone and join track unfinished work", async () => {
    const clock = new VirtualClock();
    const q = new Queue<number>({ clock });
    await expect(q.join()).resolves.toBeUndefined();
    expect(() => q.taskDone()).toThrow(RangeError);
    expect(() => q.taskDone()).toThrow("Cannot mark a task done: taskDone() was called more times than items were put");
    q.putNowait(1);
    q.putNowait(2);
    const j = track(q.join());
    q.getNowait();
    q.taskDone();
    await flush();
    expect(j.state).toBe("pending");
    expect(q.unfinishedTasks).toBe(1);
    q.getNowait();
    q.taskDone();
    await flush();
    expect(j.state).toBe("resolved");
    expect(() => q.taskDone()).toThrow(RangeError);
  });

  test("join rejects with TimeoutError when the timeout expires", async () => {
    const clock = new VirtualClock();
    const q = new Queue<number>({ clock });
    q.putNowait(1);
    const j = track(q.join(1000));
    clock.advance(1000);
    await flush();
    expect(j.error).toBeInstanceOf(TimeoutError);
    expect((j.error as Error).message).toBe("Cannot join the queue: the timeout expired");
    q.taskDone();
    expect(clock.pendingTimers).toBe(0);
  });

  test("for await gets items in order and can be left with break", async () => {
    const q = new Queue<number>({ clock: new VirtualClock() });
    const seen: number[] = [];
    const consumer = (async () => {
      for await (const item of q) {
        seen.push(item);
        q.taskDone();
        if (item === 3) break;
      }
    })();
    await q.put(1);
    await q.put(2);
    await flush();
    expect(seen).toEqual([1, 2]);
    await q.put(3);
    await q.put(4);
    await consumer;
    expect(seen).toEqual([1, 2, 3]);
    expect(q.getNowait()).toBe(4);
  });

  test("several iterators share the items, first come first served", async () => {
    const q = new Queue<number>({ clock: new VirtualClock() });
    const a = q[Symbol.asyncIterator]();
    const b = q[Symbol.asyncIterator]();
    expect(a[Symbol.asyncIterator]()).toBe(a);
    const ra = track(a.next());
    const rb = track(b.next());
    q.putNowait(10);
    q.putNowait(20);
    await flush();
    expect(ra.value).toEqual({ value: 10, done: false });
    expect(rb.value).toEqual({ value: 20, done: false });
  });

  test("the ring buffer keeps FIFO order across growth, wraparound and shrinking", () => {
    // Runs of puts and of gets, so that the buffer grows, wraps and shrinks often.
    const run = fc.record({ put: fc.boolean(), count: fc.integer({ min: 1, max: 40 }) });
    fc.assert(
      fc.property(fc.array(run, { maxLength: 30, size: "max" }), (runs) => {
        const q = new Queue<number>();
        const model: number[] = [];
        let next = 0;
        for (const { put, count } of runs) {
          for (let i = 0; i < count; i++) {
            if (put) {
              q.putNowait(next);
              model.push(next++);
            } else if (model.length === 0) {
              expect(() => q.getNowait()).toThrow(QueueEmpty);
            } else {
              expect(q.getNowait()).toBe(model.shift());
            }
          }
          expect(q.qsize()).toBe(model.length);
        }
        expect(drain(q)).toEqual(model);
      }),
    );
  });

  test("a subclass can plug in its own store", () => {
    class Reversed<T> implements QueueStore<T> {
      items: T[] = [];
      get size(): number {
        return this.items.length;
      }
      put(item: T): void {
        this.items.unshift(item);
      }
      take(): T {
        return this.items.shift()!;
      }
    }
    class StackQueue<T> extends Queue<T> {
      protected override createStore(options: QueueOptions): QueueStore<T> {
        return new Reversed<T>();
      }
    }
    const q = new StackQueue<number>({ maxsize: 3 });
    q.putNowait(1);
    q.putNowait(2);
    q.putNowait(3);
    expect(() => q.putNowait(4)).toThrow(QueueFull);
    expect(drain(q)).toEqual([3, 2, 1]);
  });
});

describe("PriorityQueue", () => {
  test("hands out the lowest first, Tornado's example", () => {
    const q = new PriorityQueue<[number, string]>();
    q.putNowait([1, "medium-priority item"]);
    q.putNowait([0, "high-priority item"]);
    q.putNowait([10, "low-priority item"]);
    expect(drain(q)).toEqual([
      [0, "high-priority item"],
      [1, "medium-priority item"],
      [10, "low-priority item"],
    ]);
  });

  test("equal priorities come out first in, first out", () => {
    const q = new PriorityQueue<[number, { name: string }]>();
    q.putNowait([1, { name: "a" }]);
    q.putNowait([0, { name: "b" }]);
    q.putNowait([1, { name: "c" }]);
    q.putNowait([0, { name: "d" }]);
    q.putNowait([1, { name: "e" }]);
    expect(drain(q).map(([, v]) => v.name)).toEqual(["b", "d", "a", "c", "e"]);
  });

  test("the default order is Python-like: numbers, strings, arrays, then ties", () => {
    const q = new PriorityQueue<unknown>();
    const obj = { o: 1 };
    const items: unknown[] = [obj, [1, "b"], "b", 2n, Number.NaN, [1], -Infinity, "a", [1, "a"], 1, true, null, [0, 9], 1.5, [], undefined];
    for (const item of items) q.putNowait(item);
    expect(drain(q)).toEqual([-Infinity, 1, 1.5, 2n, Number.NaN, "a", "b", [], [0, 9], [1], [1, "a"], [1, "b"], obj, true, null, undefined]);
  });

  test("bigints and numbers compare by value", () => {
    const q = new PriorityQueue<number | bigint>();
    for (const v of [3n, 2, 1n, 2.5, 0]) q.putNowait(v);
    expect(drain(q)).toEqual([0, 1n, 2, 2.5, 3n]);
  });

  test("takes a comparator", () => {
    const q = new PriorityQueue<{ due: number; id: number }>({ compare: (a, b) => b.due - a.due });
    q.putNowait({ due: 1, id: 1 });
    q.putNowait({ due: 3, id: 2 });
    q.putNowait({ due: 3, id: 3 });
    q.putNowait({ due: 2, id: 4 });
    expect(drain(q).map((x) => x.id)).toEqual([2, 3, 4, 1]);
  });

  test("rejects a comparator that is not a function", () => {
    expect(() => new PriorityQueue({ compare: 5 as unknown as () => number })).toThrow(TypeError);
  });

  test("is a stable sort for any input", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 5 }), fc.nat()), { maxLength: 200, size: "max" }), (pairs) => {
        const q = new PriorityQueue<readonly [number, number]>({ compare: (a, b) => a[0] - b[0] });
        for (const p of pairs) q.putNowait(p);
        const expected = [...pairs].sort((a, b) => a[0] - b[0]); // Array sort is stable
        const out = drain(q);
        expect(out.length).toBe(expected.length);
        for (let i = 0; i < out.length; i++) expect(out[i]).toBe(expected[i]);
      }),
    );
  });

  test("stays stable when puts and gets interleave", () => {
    fc.assert(
      fc.property(fc.array(fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }), { maxLength: 200, size: "max" }), (ops) => {
        const q = new PriorityQueue<{ p: number; seq: number }>({ compare: (a, b) => a.p - b.p });
        const model: { p: number; seq: number }[] = [];
        let seq = 0;
        for (const op of ops) {
          if (op !== undefined) {
            const item = { p: op, seq: seq++ };
            q.putNowait(item);
            model.push(item);
          } else if (model.length > 0) {
            let best = 0;
            for (let i = 1; i < model.length; i++) if (model[i]!.p < model[best]!.p) best = i;
            expect(q.getNowait()).toBe(model.splice(best, 1)[0]);
          }
        }
      }),
    );
  });

  test("a comparator that throws loses no item", () => {
    let fail = false;
    const q = new PriorityQueue<number>({
      compare: (a, b) => {
        if (fail) throw new Error("bad compare");
        return a - b;
      },
    });
    for (const v of [5, 3, 8, 1, 9, 2]) q.putNowait(v);
    fail = true;
    expect(() => q.putNowait(0)).toThrow("bad compare");
    fail = false;
    expect(drain(q).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 5, 8, 9]);
  });

  test("with putters waiting, the putter's item goes in before the take (as Tornado)", async () => {
    const q = new PriorityQueue<number>({ maxsize: 1, clock: new VirtualClock() });
    q.putNowait(5);
    const p = track(q.put(1));
    expect(q.getNowait()).toBe(1);
    await flush();
    expect(p.state).toBe("resolved");
    expect(q.getNowait()).toBe(5);
  });
});

describe("LifoQueue", () => {
  test("hands out the most recent item first", () => {
    const q = new LifoQueue<number>();
    q.putNowait(3);
    q.putNowait(2);
    q.putNowait(1);
    expect(drain(q)).toEqual([1, 2, 3]);
  });

  test("with putters waiting, the putter's item is the most recent (as Tornado)", async () => {
    const q = new LifoQueue<string>({ maxsize: 2, clock: new VirtualClock() });
    q.putNowait("a");
    q.putNowait("b");
    const p = track(q.put("c"));
    expect(q.getNowait()).toBe("c");
    await flush();
    expect(p.state).toBe("resolved");
    expect(drain(q)).toEqual(["b", "a"]);
  });

  test("getters wait and are served in order", async () => {
    const q = new LifoQueue<number>({ clock: new VirtualClock() });
    const a = track(q.get());
    const b = track(q.get());
    q.putNowait(1);
    q.putNowait(2);
    await flush();
    expect([a.value, b.value]).toEqual([1, 2]);
  });
});

// ---------------------------------------------------------------------------
// Model-based tests: random interleavings of put/get/putNowait/getNowait/
// taskDone/join/timeouts against a model that serves waiters in strict
// arrival order. Every item is a fresh object, so a lost, duplicated or
// misrouted item fails the identity checks.
// ---------------------------------------------------------------------------

type Kind = "fifo" | "lifo" | "priority" | "priority-compare";
/** `[priority, token]`: FIFO and LIFO queues ignore the priority. */
type Item = readonly [number, { readonly id: number }];

type Expect = { state: "pending" } | { state: "resolved"; value: Item | undefined } | { state: "rejected"; error: typeof TimeoutError };

interface WaiterModel {
  id: number;
  deadline: number;
}

interface QModel {
  kind: Kind;
  maxsize: number;
  now: number;
  nextId: number;
  nextItem: number;
  store: Item[];
  getters: WaiterModel[];
  putters: (WaiterModel & { item: Item })[];
  joiners: WaiterModel[];
  unfinished: number;
  expected: Map<number, Expect>;
}

interface QReal {
  clock: VirtualClock;
  q: Queue<Item>;
  /** Every get and put and join promise, by operation id. */
  actual: Map<number, Tracked<Item | void>>;
  /** Which operation ids were gets / puts. */
  gets: Set<number>;
  puts: Set<number>;
  /** Items returned by getNowait and items accepted by putNowait. */
  gotNowait: Item[];
  putNowaitAccepted: number;
}

type QCommand = fc.AsyncCommand<QModel, QReal>;

function makeQueue(kind: Kind, maxsize: number, clock: VirtualClock): Queue<Item> {
  switch (kind) {
    case "fifo":
      return new Queue<Item>({ maxsize, clock });
    case "lifo":
      return new LifoQueue<Item>({ maxsize, clock });
    case "priority":
      return new PriorityQueue<Item>({ maxsize, clock }); // default order: [p, {..}] ties are FIFO
    case "priority-compare":
      return new PriorityQueue<Item>({ maxsize, clock, compare: (a, b) => a[0] - b[0] });
  }
}

function modelTakeFromStore(m: QModel): Item {
  switch (m.kind) {
    case "fifo":
      return m.store.shift()!;
    case "lifo":
      return m.store.pop()!;
    default: {
      let best = 0;
      for (let i = 1; i < m.store.length; i++) if (m.store[i]![0] < m.store[best]![0]) best = i;
      return m.store.splice(best, 1)[0]!;
    }
  }
}

/** Tornado's `put_nowait`: hand to the first getter, else store if there is room. */
function modelOffer(m: QModel, item: Item): boolean {
  const getter = m.getters.shift();
  if (getter !== undefined) {
    m.unfinished++;
    m.expected.set(getter.id, { state: "resolved", value: item });
    return true;
  }
  if (m.store.length >= m.maxsize) return false;
  m.store.push(item);
  m.unfinished++;
  return true;
}

/** Tornado's `get_nowait` when the store is not empty: let the first putter in, then take. */
function modelTake(m: QModel): Item {
  const putter = m.putters.shift();
  if (putter !== undefined) {
    m.store.push(putter.item);
    m.unfinished++;
    m.expected.set(putter.id, { state: "resolved", value: undefined });
  }
  return modelTakeFromStore(m);
}

function show(value: unknown): string {
  return value === undefined ? "undefined" : JSON.stringify(value);
}

function finiteTimers(waiters: WaiterModel[]): number {
  return waiters.filter((w) => w.deadline !== Infinity).length;
}

async function checkQueue(m: QModel, r: QReal): Promise<void> {
  await flush();
  const { q } = r;
  expect(q.qsize()).toBe(m.store.length);
  expect(q.empty()).toBe(m.store.length === 0);
  expect(q.full()).toBe(m.store.length >= m.maxsize);
  expect(q.unfinishedTasks).toBe(m.unfinished);
  expect(r.clock.pendingTimers).toBe(finiteTimers(m.getters) + finiteTimers(m.putters) + finiteTimers(m.joiners));
  // Every operation settled exactly as the model says: the right item to the right getter.
  expect(r.actual.size).toBe(m.expected.size);
  const wrong: string[] = [];
  for (const [id, want] of m.expected) {
    const got = r.actual.get(id)!;
    if (got.state !== want.state) wrong.push(`op ${id}: ${got.state}, expected ${want.state}`);
    else if (want.state === "resolved" && got.value !== want.value) wrong.push(`op ${id}: got ${show(got.value)}, expected ${show(want.value)}`);
    else if (want.state === "rejected" && !(got.error instanceof want.error)) wrong.push(`op ${id}: rejected with ${String(got.error)}`);
  }
  expect(wrong).toEqual([]);
  // Conservation, from the real side alone: every item that went in is either
  // still queued or was received exactly once.
  const received: Item[] = [...r.gotNowait];
  let putsResolved = r.putNowaitAccepted;
  for (const id of r.gets) {
    const t = r.actual.get(id)!;
    if (t.state === "resolved") received.push(t.value as Item);
  }
  for (const id of r.puts) if (r.actual.get(id)!.state === "resolved") putsResolved++;
  expect(new Set(received).size).toBe(received.length);
  expect(received.length + q.qsize()).toBe(putsResolved);
}

function timeoutFor(now: number, timeout: number | undefined, absolute: boolean): Timeout | undefined {
  if (timeout === undefined) return undefined;
  return absolute ? { deadline: now + timeout } : timeout;
}

function deadlineOf(now: number, timeout: number | undefined): number {
  return timeout === undefined ? Infinity : now + timeout;
}

class QPut implements QCommand {
  constructor(
    readonly priority: number,
    readonly timeout: number | undefined,
    readonly absolute: boolean,
  ) {}
  check(): boolean {
    return true;
  }
  async run(m: QModel, r: QReal): Promise<void> {
    const id = m.nextId++;
    const item: Item = [this.priority, { id: m.nextItem++ }];
    r.puts.add(id);
    r.actual.set(id, track(r.q.put(item, timeoutFor(r.clock.now(), this.timeout, this.absolute))));
    if (modelOffer(m, item)) m.expected.set(id, { state: "resolved", value: undefined });
    else {
      m.putters.push({ id, item, deadline: deadlineOf(m.now, this.timeout) });
      m.expected.set(id, { state: "pending" });
    }
    await checkQueue(m, r);
  }
  toString(): string {
    return `put(p${this.priority}, ${this.absolute ? "deadline " : ""}${this.timeout})`;
  }
}

class QPutNowait implements QCommand {
  constructor(readonly priority: number) {}
  check(): boolean {
    return true;
  }
  async run(m: QModel, r: QReal): Promise<void> {
    const item: Item = [this.priority, { id: m.nextItem++ }];
    if (modelOffer(m, item)) {
      r.q.putNowait(item);
      r.putNowaitAccepted++;
    } else {
      expect(() => r.q.putNowait(item)).toThrow(QueueFull);
    }
    await checkQueue(m, r);
  }
  toString(): string {
    return `putNowait(p${this.priority})`;
  }
}

class QGet implements QCommand {
  constructor(
    readonly timeout: number | undefined,
    readonly absolute: boolean,
    readonly viaIterator: boolean,
  ) {}
  check(): boolean {
    return true;
  }
  async run(m: QModel, r: QReal): Promise<void> {
    const id = m.nextId++;
    r.gets.add(id);
    const promise = this.viaIterator
      ? r.q[Symbol.asyncIterator]()
          .next()
          .then((res) => {
            expect(res.done).toBe(false);
            return res.value;
          })
      : r.q.get(timeoutFor(r.clock.now(), this.timeout, this.absolute));
    r.actual.set(id, track(promise));
    const timeout = this.viaIterator ? undefined : this.timeout;
    if (m.store.length > 0) m.expected.set(id, { state: "resolved", value: modelTake(m) });
    else {
      m.getters.push({ id, deadline: deadlineOf(m.now, timeout) });
      m.expected.set(id, { state: "pending" });
    }
    await checkQueue(m, r);
  }
  toString(): string {
    return this.viaIterator ? "iterator.next()" : `get(${this.absolute ? "deadline " : ""}${this.timeout})`;
  }
}

class QGetNowait implements QCommand {
  check(): boolean {
    return true;
  }
  async run(m: QModel, r: QReal): Promise<void> {
    if (m.store.length > 0) {
      const want = modelTake(m);
      const got = r.q.getNowait();
      expect(got).toBe(want);
      r.gotNowait.push(got);
    } else {
      expect(() => r.q.getNowait()).toThrow(QueueEmpty);
    }
    await checkQueue(m, r);
  }
  toString(): string {
    return "getNowait()";
  }
}

class QTaskDone implements QCommand {
  check(): boolean {
    return true;
  }
  async run(m: QModel, r: QReal): Promise<void> {
    if (m.unfinished === 0) {
      expect(() => r.q.taskDone()).toThrow(RangeError);
    } else {
      r.q.taskDone();
      if (--m.unfinished === 0) {
        for (const j of m.joiners.splice(0)) m.expected.set(j.id, { state: "resolved", value: undefined });
      }
    }
    await checkQueue(m, r);
  }
  toString(): string {
    return "taskDone()";
  }
}

class QJoin implements QCommand {
  constructor(readonly timeout: number | undefined) {}
  check(): boolean {
    return true;
  }
  async run(m: QModel, r: QReal): Promise<void> {
    const id = m.nextId++;
    r.actual.set(id, track(r.q.join(this.timeout)));
    if (m.unfinished === 0) m.expected.set(id, { state: "resolved", value: undefined });
    else {
      m.joiners.push({ id, deadline: deadlineOf(m.now, this.timeout) });
      m.expected.set(id, { state: "pending" });
    }
    await checkQueue(m, r);
  }
  toString(): string {
    return `join(${this.timeout})`;
  }
}

class QAdvance implements QCommand {
  constructor(readonly ms: number) {}
  check(): boolean {
    return true;
  }
  async run(m: QModel, r: QReal): Promise<void> {
    r.clock.advance(this.ms);
    m.now += this.ms;
    for (const list of [m.getters, m.putters, m.joiners] as WaiterModel[][]) {
      const kept = list.filter((w) => w.deadline > m.now);
      for (const w of list) if (w.deadline <= m.now) m.expected.set(w.id, { state: "rejected", error: TimeoutError });
      list.splice(0, list.length, ...kept);
    }
    await checkQueue(m, r);
  }
  toString(): string {
    return `advance(${this.ms})`;
  }
}

const timeoutArb = fc.option(fc.integer({ min: -5, max: 60 }), { nil: undefined, freq: 3 });
const priorityArb = fc.integer({ min: 0, max: 2 });

const queueCommands = fc.commands(
  [
    fc.tuple(priorityArb, timeoutArb, fc.boolean()).map(([p, t, abs]) => new QPut(p, t, abs)),
    priorityArb.map((p) => new QPutNowait(p)),
    fc.tuple(timeoutArb, fc.boolean(), fc.boolean()).map(([t, abs, it]) => new QGet(t, abs, it)),
    fc.constant(new QGetNowait()),
    fc.constant(new QTaskDone()),
    timeoutArb.map((t) => new QJoin(t)),
    fc.integer({ min: 0, max: 40 }).map((ms) => new QAdvance(ms)),
  ],
  { maxCommands: 80, size: "max" },
);

describe("queue model", () => {
  for (const kind of ["fifo", "lifo", "priority", "priority-compare"] as const) {
    test(`${kind}: waiters are served in arrival order; no item is lost, duplicated or given to a timed-out waiter`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(1, 2, 3, Infinity), queueCommands, async (maxsize, cmds) => {
          const clock = new VirtualClock(0);
          const model: QModel = {
            kind,
            maxsize,
            now: 0,
            nextId: 0,
            nextItem: 0,
            store: [],
            getters: [],
            putters: [],
            joiners: [],
            unfinished: 0,
            expected: new Map(),
          };
          const real: QReal = {
            clock,
            q: makeQueue(kind, maxsize, clock),
            actual: new Map(),
            gets: new Set(),
            puts: new Set(),
            gotNowait: [],
            putNowaitAccepted: 0,
          };
          await fc.asyncModelRun(() => ({ model, real }), cmds);
        }),
        { numRuns: 150 },
      );
    });
  }
});
