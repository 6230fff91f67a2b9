import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { concatBytes, toBytes, utf8Decode } from "../src/core/bytes";
import {
  checkIOStreamOptions,
  DEFAULT_MAX_BUFFER_SIZE,
  IOStream,
  type IOStreamOptions,
  StreamBufferFullError,
  StreamClosedError,
  UnsatisfiableReadError,
} from "../src/core/iostream";
import type { Connection, ConnectionHandler, SocketAddress, StartTlsOptions } from "../src/core/transport";
import { createPipe, flushMemory, type MemoryConnection, type MemoryPipeOptions } from "../src/transports/memory";

const text = (bytes: Uint8Array): string => utf8Decode(bytes);

/** Records what a peer end receives. */
class Peer implements ConnectionHandler {
  readonly chunks: Uint8Array[] = [];
  ended = false;
  closed = false;
  closeError: Error | undefined;
  constructor(readonly conn: MemoryConnection) {
    conn.setHandler(this);
  }
  get text(): string {
    return text(concatBytes(this.chunks));
  }
  data(chunk: Uint8Array): void {
    this.chunks.push(chunk);
  }
  end(): void {
    this.ended = true;
  }
  drain(): void {}
  close(error?: Error): void {
    this.closed = true;
    this.closeError = error;
  }
  send(data: string | Uint8Array): boolean {
    return this.conn.write(toBytes(data));
  }
}

function setup(streamOptions: IOStreamOptions = {}, pipeOptions: MemoryPipeOptions = {}): { stream: IOStream; peer: Peer; end: MemoryConnection } {
  const [a, b] = createPipe(pipeOptions);
  const peer = new Peer(a);
  const stream = new IOStream(b, streamOptions);
  return { stream, peer, end: b };
}

/** Settles a promise into a tagged result, for comparing outcomes. */
async function outcome<T>(promise: Promise<T>): Promise<{ ok: T } | { error: Error }> {
  try {
    return { ok: await promise };
  } catch (error) {
    return { error: error as Error };
  }
}

/** True if the promise is still pending once the memory pipes are quiet. */
async function isPending(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await flushMemory();
  return !settled;
}

/** Cuts `input` at the given offsets (taken modulo its length). */
function cutAt(input: string, cuts: readonly number[]): string[] {
  if (input.length === 0) return [];
  const offsets = [...new Set(cuts.map((c) => c % input.length).filter((c) => c > 0))].sort((x, y) => x - y);
  const pieces: string[] = [];
  let last = 0;
  for (const offset of offsets) {
    pieces.push(input.slice(last, offset));
    last = offset;
  }
  pieces.push(input.slice(last));
  return pieces;
}

/** Writes the pieces one by one, letting the pipe deliver each, then half-closes. */
async function feed(peer: Peer, pieces: readonly string[], end = true): Promise<void> {
  for (const piece of pieces) {
    peer.send(piece);
    await flushMemory();
  }
  if (end) peer.conn.end();
  await flushMemory();
}

type Op =
  | { kind: "until"; delimiter: string }
  | { kind: "regex" }
  | { kind: "bytes"; n: number }
  | { kind: "into"; n: number };

const LINE_REGEX = /\r?\n/;

/** What the ops read from the whole input, then what is left: the reference. */
function model(input: string, ops: readonly Op[]): string[] {
  const results: string[] = [];
  let pos = 0;
  for (const op of ops) {
    let end: number;
    if (op.kind === "until") {
      const index = input.indexOf(op.delimiter, pos);
      end = index < 0 ? -1 : index + op.delimiter.length;
    } else if (op.kind === "regex") {
      const match = LINE_REGEX.exec(input.slice(pos));
      end = match === null ? -1 : pos + match.index + match[0].length;
    } else {
      end = pos + op.n <= input.length ? pos + op.n : -1;
    }
    if (end < 0) {
      results.push("<closed>");
      return results;
    }
    results.push(input.slice(pos, end));
    pos = end;
  }
  results.push(`<rest>${input.slice(pos)}`);
  return results;
}

/** Runs the ops on a stream, then `readUntilClose`. */
async function runOps(stream: IOStream, ops: readonly Op[]): Promise<string[]> {
  const results: string[] = [];
  for (const op of ops) {
    try {
      if (op.kind === "until") results.push(text(await stream.readUntil(op.delimiter)));
      else if (op.kind === "regex") results.push(text(await stream.readUntilRegex(LINE_REGEX)));
      else if (op.kind === "bytes") results.push(text(await stream.readBytes(op.n)));
      else {
        const buffer = new Uint8Array(op.n);
        const n = await stream.readInto(buffer);
        expect(n).toBe(op.n);
        results.push(text(buffer));
      }
    } catch (error) {
      expect(error).toBeInstanceOf(StreamClosedError);
      results.push("<closed>");
      return results;
    }
  }
  results.push(`<rest>${text(await stream.readUntilClose())}`);
  return results;
}

const inputArb = fc.array(fc.constantFrom("a", "b", "\r", "\n", ";"), { maxLength: 80 }).map((chars) => chars.join(""));
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant("until" as const), delimiter: fc.constantFrom("\n", "\r\n", "ab", ";;a", "\r\n\r\n") }),
  fc.record({ kind: fc.constant("regex" as const) }),
  fc.record({ kind: fc.constant("bytes" as const), n: fc.nat(12) }),
  fc.record({ kind: fc.constant("into" as const), n: fc.nat(12) }),
);
const cutsArb = fc.array(fc.nat(200), { maxLength: 12 });

describe("IOStream: reads are independent of how the input is split", () => {
  it("gives the same readUntil/readUntilRegex/readBytes/readInto results for any split", async () => {
    await fc.assert(
      fc.asyncProperty(
        inputArb,
        fc.array(opArb, { maxLength: 12 }),
        cutsArb,
        cutsArb,
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 1, max: 64 }),
        async (input, ops, writeCuts, splitCuts, readHighWaterMark, highWaterMark) => {
          const { stream, peer } = setup(
            { readHighWaterMark },
            { highWaterMark, split: (chunk) => splitCuts.map((c) => c % Math.max(1, chunk.length)) },
          );
          const reading = runOps(stream, ops);
          await feed(peer, cutAt(input, writeCuts));
          expect(await reading).toEqual(model(input, ops));
        },
      ),
      { numRuns: 150 },
    );
  });

  it("finds a delimiter split byte by byte across chunks, and one inside a single chunk", async () => {
    const { stream, peer } = setup({}, { split: 1 });
    const reading = stream.readUntil("\r\n\r\n");
    peer.send("GET / HTTP/1.1\r\nHost: x\r\n\r\nrest");
    expect(text(await reading)).toBe("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    peer.send("\r\n\r\n");
    expect(text(await stream.readUntil("\r\n\r\n"))).toBe("rest\r\n\r\n");
    const one = setup();
    one.peer.send("abc--def--");
    expect(text(await one.stream.readUntil("--"))).toBe("abc--");
    expect(text(await one.stream.readUntil("--"))).toBe("def--");
  });

  it("handles a long line delivered in many small chunks without losing its end", async () => {
    const { stream, peer } = setup({}, { split: 7 });
    const line = `${"x".repeat(100_000)}\n`;
    const reading = stream.readUntil("\n");
    peer.send(line);
    expect((await reading).byteLength).toBe(line.length);
  });
});

describe("IOStream: limits", () => {
  it("readUntil with maxBytes resolves within the limit, else rejects with UnsatisfiableReadError and closes", async () => {
    await fc.assert(
      fc.asyncProperty(inputArb, fc.nat(40), cutsArb, fc.boolean(), async (input, maxBytes, cuts, useRegex) => {
        const { stream, peer } = setup();
        const reading = outcome(useRegex ? stream.readUntilRegex(LINE_REGEX, { maxBytes }) : stream.readUntil("\n", { maxBytes }));
        await feed(peer, cutAt(input, cuts));
        const result = await reading;
        const match = useRegex ? LINE_REGEX.exec(input) : null;
        const end = useRegex ? (match === null ? -1 : match.index + match[0].length) : input.indexOf("\n") < 0 ? -1 : input.indexOf("\n") + 1;
        if (end >= 0 && end <= maxBytes) {
          expect(result).toEqual({ ok: toBytes(input.slice(0, end)) });
        } else if (end >= 0 || input.length > maxBytes) {
          expect("error" in result && result.error).toBeInstanceOf(UnsatisfiableReadError);
          expect(stream.closed).toBe(true);
          expect(stream.error).toBeInstanceOf(UnsatisfiableReadError);
          const later = await stream.write("x").catch((e: unknown) => e);
          expect(later).toBeInstanceOf(StreamClosedError);
          expect((later as StreamClosedError).realError).toBeInstanceOf(UnsatisfiableReadError);
        } else {
          expect("error" in result && result.error).toBeInstanceOf(StreamClosedError);
        }
      }),
      { numRuns: 150 },
    );
  });

  it("never holds more than maxBufferSize: a read that needs more fails with StreamBufferFullError", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 0, max: 120 }),
        cutsArb,
        fc.boolean(),
        async (maxBufferSize, n, length, cuts, untilClose) => {
          const { stream, peer } = setup({ maxBufferSize });
          const input = "z".repeat(length);
          const reading = outcome(untilClose ? stream.readUntilClose() : stream.readBytes(n));
          for (const piece of cutAt(input, cuts)) {
            peer.send(piece);
            await flushMemory();
            if (!stream.closed) expect(stream.bufferedLength).toBeLessThanOrEqual(maxBufferSize);
          }
          peer.conn.end();
          await flushMemory();
          const result = await reading;
          const need = untilClose ? Infinity : n;
          // Nothing is consumed before the read is satisfied, so the buffer
          // overflows with the first chunk that takes the total past the limit.
          let buffered = 0;
          let overflow: number | null = null;
          for (const piece of cutAt(input, cuts)) {
            buffered += piece.length;
            if (buffered > maxBufferSize) {
              overflow = buffered;
              break;
            }
          }
          const message = `Cannot read more: ${overflow} bytes are buffered and maxBufferSize is ${maxBufferSize}`;
          if (length > maxBufferSize && need > maxBufferSize) {
            expect("error" in result && result.error).toBeInstanceOf(StreamBufferFullError);
            expect("error" in result && result.error.message).toBe(message);
            expect(stream.closed).toBe(true);
            expect(stream.error).toBeInstanceOf(StreamBufferFullError);
            expect(stream.error?.message).toBe(message);
            expect((stream.error as StreamBufferFullError).code).toBe("ERR_STREAM_BUFFER_FULL");
          } else if (!untilClose && n > length) {
            expect("error" in result && result.error).toBeInstanceOf(StreamClosedError);
          } else if ("ok" in result) {
            expect(result.ok.byteLength).toBe(untilClose ? length : n);
          } else {
            // The read needed no more than the limit, but one chunk overshot it.
            expect(result.error).toBeInstanceOf(StreamBufferFullError);
            expect(result.error.message).toBe(message);
            expect(cutAt(input, cuts).some((piece) => piece.length > maxBufferSize - n + 1)).toBe(true);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it("reads that fit succeed when chunks are small enough, with reading paused in between", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 16 }), { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 16 }),
        async (sizes, chunk, readHighWaterMark) => {
          const maxBufferSize = Math.max(...sizes, readHighWaterMark) + chunk - 1;
          const { stream, peer } = setup({ maxBufferSize, readHighWaterMark }, { split: chunk });
          const total = sizes.reduce((x, y) => x + y, 0);
          const input = Array.from({ length: total }, (_, i) => String.fromCharCode(97 + (i % 26))).join("");
          peer.send(input);
          peer.conn.end();
          let pos = 0;
          for (const size of sizes) {
            await flushMemory();
            expect(stream.bufferedLength).toBeLessThanOrEqual(maxBufferSize);
            expect(text(await stream.readBytes(size))).toBe(input.slice(pos, pos + size));
            pos += size;
          }
          expect(stream.error).toBeUndefined();
        },
      ),
      { numRuns: 100 },
    );
  });

  it("rejects a write beyond maxWriteBufferSize and stays open", async () => {
    const { stream, peer } = setup({ maxWriteBufferSize: 10 });
    peer.conn.pause();
    await stream.write("12345");
    await expect(stream.write("1234567")).rejects.toBeInstanceOf(StreamBufferFullError);
    expect(stream.closed).toBe(false);
    peer.conn.resume();
    await flushMemory();
    await stream.write("1234567");
    await flushMemory();
    expect(peer.text).toBe("123451234567");
  });

  it("checks its options", () => {
    expect(() => checkIOStreamOptions({ maxBufferSize: 0 })).toThrow(RangeError);
    expect(() => checkIOStreamOptions({ readHighWaterMark: -1 })).toThrow(RangeError);
    expect(() => checkIOStreamOptions({ maxWriteBufferSize: 1.5 })).toThrow(RangeError);
    expect(() => setup({ maxBufferSize: Number.NaN })).toThrow(RangeError);
    const { stream } = setup({ maxBufferSize: 100, readHighWaterMark: 1000 });
    expect(stream.maxBufferSize).toBe(100);
    expect(stream.readHighWaterMark).toBe(100);
    expect(setup().stream.maxBufferSize).toBe(DEFAULT_MAX_BUFFER_SIZE);
    expect(() => stream.readBytes(-1)).toThrow(RangeError);
    expect(() => stream.readUntil("")).toThrow(RangeError);
    expect(() => stream.readUntil("x", { maxBytes: -1 })).toThrow(RangeError);
  });
});

describe("IOStream: readInto", () => {
  it("fills the buffer (or some of it, with partial) and reconstructs the input", async () => {
    await fc.assert(
      fc.asyncProperty(inputArb, fc.integer({ min: 1, max: 16 }), fc.boolean(), cutsArb, async (input, size, partial, cuts) => {
        const { stream, peer } = setup({ readHighWaterMark: 8 });
        const pieces: string[] = [];
        const reading = (async () => {
          for (;;) {
            const buffer = new Uint8Array(size).fill(0x7e);
            let n: number;
            try {
              n = await stream.readInto(buffer, { partial });
            } catch (error) {
              expect(error).toBeInstanceOf(StreamClosedError);
              return;
            }
            if (partial) {
              expect(n).toBeGreaterThanOrEqual(1);
              expect(n).toBeLessThanOrEqual(size);
            } else {
              expect(n).toBe(size);
            }
            pieces.push(text(buffer.subarray(0, n)));
          }
        })();
        await feed(peer, cutAt(input, cuts));
        await reading;
        const got = pieces.join("");
        if (partial) expect(got).toBe(input);
        else expect(got).toBe(input.slice(0, input.length - (input.length % size)));
      }),
      { numRuns: 100 },
    );
  });

  it("resolves at once with 0 for an empty buffer, and partial readBytes with what is there", async () => {
    const { stream, peer } = setup();
    expect(await stream.readInto(new Uint8Array(0))).toBe(0);
    expect((await stream.readBytes(0)).byteLength).toBe(0);
    peer.send("abc");
    expect(text(await stream.readBytes(100, { partial: true }))).toBe("abc");
    peer.send("defgh");
    await flushMemory();
    expect(text(await stream.readBytes(2, { partial: true }))).toBe("de");
    expect(text(await stream.readBytes(3))).toBe("fgh");
  });
});

describe("IOStream: close and reset", () => {
  it("rejects a pending read with StreamClosedError when the peer closes, and still serves what was buffered", async () => {
    const { stream, peer } = setup();
    let closeCalls = 0;
    stream.setCloseCallback(() => closeCalls++);
    peer.send("one\ntwo");
    peer.conn.end();
    await flushMemory();
    expect(stream.closed).toBe(true);
    expect(stream.error).toBeUndefined();
    expect(text(await stream.readUntil("\n"))).toBe("one\n");
    const error = await stream.readUntil("\n").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StreamClosedError);
    expect((error as StreamClosedError).realError).toBeUndefined();
    expect(text(await stream.readUntilClose())).toBe("two");
    await expect(stream.readBytes(1)).rejects.toBeInstanceOf(StreamClosedError);
    await expect(stream.write("x")).rejects.toBeInstanceOf(StreamClosedError);
    await flushMemory();
    expect(closeCalls).toBe(1);
    // The stream ended its side too, so the connection closed cleanly.
    expect(peer.ended).toBe(true);
    expect(peer.closed).toBe(true);
    expect(peer.closeError).toBeUndefined();
  });

  it("carries the cause of a reset: the pending read's StreamClosedError has it, readUntilClose gets the rest", async () => {
    const { stream, peer } = setup();
    const pending = stream.readUntil("\n");
    peer.conn.reset();
    const error = await pending.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StreamClosedError);
    expect((error as StreamClosedError).realError).toMatchObject({ code: "ECONNRESET" });
    expect((error as Error).message).toMatch(/^Cannot read: the stream is closed \(/);
    expect(stream.error).toMatchObject({ code: "ECONNRESET" });

    const other = setup();
    other.peer.send("partial");
    await flushMemory();
    const rest = other.stream.readUntilClose();
    other.peer.conn.reset();
    expect(text(await rest)).toBe("partial");
    expect(other.stream.error).toMatchObject({ code: "ECONNRESET" });
  });

  it("rejects writes waiting for a drain when the connection resets", async () => {
    const { stream, peer } = setup({}, { highWaterMark: 4 });
    peer.conn.pause();
    const write = stream.write("0123456789");
    expect(await isPending(write)).toBe(true);
    expect(stream.writing()).toBe(true);
    peer.conn.reset();
    await expect(write).rejects.toBeInstanceOf(StreamClosedError);
  });

  it("closes locally: the peer sees the end, pending reads reject, data sent afterwards resets", async () => {
    const { stream, peer } = setup();
    const pending = stream.readBytes(10);
    const waited = stream.waitClosed();
    await stream.write("bye");
    stream.close();
    stream.close();
    await expect(pending).rejects.toBeInstanceOf(StreamClosedError);
    await waited;
    await flushMemory();
    expect(peer.text).toBe("bye");
    expect(peer.ended).toBe(true);
    peer.send("late");
    await flushMemory();
    expect(peer.closed).toBe(true);
    expect(peer.closeError).toMatchObject({ code: "ECONNRESET" });
  });

  it("records the error given to close as the cause of later failures", async () => {
    const { stream } = setup();
    const cause = new Error("protocol violation");
    stream.close(cause);
    expect(stream.error).toBe(cause);
    const error = await stream.readBytes(1).catch((e: unknown) => e);
    expect((error as StreamClosedError).realError).toBe(cause);
  });

  it("calls a close callback set after the close, once", async () => {
    const { stream } = setup();
    stream.close();
    let calls = 0;
    stream.setCloseCallback(() => calls++);
    await flushMemory();
    expect(calls).toBe(1);
    await stream.waitClosed();
  });
});

describe("IOStream: one read at a time", () => {
  it("throws on a second read while one is pending, and reports reading()", async () => {
    const { stream, peer } = setup();
    expect(stream.reading()).toBe(false);
    const first = stream.readUntil("\n");
    expect(stream.reading()).toBe(true);
    expect(() => stream.readBytes(1)).toThrow(/another read is pending/);
    expect(() => stream.readUntilClose()).toThrow(/^Cannot read until close/);
    peer.send("ok\n");
    expect(text(await first)).toBe("ok\n");
    expect(stream.reading()).toBe(false);
  });
});

describe("IOStream: backpressure", () => {
  it("a slow reader pauses the writer over a memory pipe, and reading lets it go on", async () => {
    const [a, b] = createPipe({ highWaterMark: 1024 });
    const writer = new IOStream(a);
    const reader = new IOStream(b, { readHighWaterMark: 4096 });
    const chunk = new Uint8Array(512).fill(0x61);
    let written = 0;
    const writing = (async () => {
      for (let i = 0; i < 64; i++) {
        await writer.write(chunk);
        written += chunk.byteLength;
      }
    })();
    await flushMemory();
    // The reader took what fits under its read high-water mark, then paused;
    // the writer is stuck on a full pipe.
    const stalledAt = written;
    expect(stalledAt).toBeLessThan(64 * 512);
    expect(reader.bufferedLength).toBeGreaterThanOrEqual(4096);
    expect(reader.bufferedLength).toBeLessThan(4096 + 1024);
    expect(writer.writing()).toBe(true);
    await flushMemory();
    expect(written).toBe(stalledAt);
    // Reading consumes the buffer, the connection resumes, the writer goes on.
    let read = 0;
    while (read < 64 * 512) read += (await reader.readBytes(8192, { partial: true })).byteLength;
    await writing;
    expect(read).toBe(64 * 512);
    expect(written).toBe(64 * 512);
  });

  it("keeps reading past the high-water mark while a read waits for more", async () => {
    const { stream, peer } = setup({ readHighWaterMark: 16 });
    const reading = stream.readUntil("\n");
    peer.send("x".repeat(100));
    await flushMemory();
    expect(stream.bufferedLength).toBe(100);
    peer.send("\n");
    expect((await reading).byteLength).toBe(101);
  });
});

describe("IOStream: STARTTLS hand-off", () => {
  /** A connection whose startTls hands over to the other end of a fresh memory pipe. */
  function upgradable(conn: MemoryConnection, result: () => Promise<Connection>): Connection {
    return new Proxy(conn, {
      get(target, key) {
        if (key === "startTls") return (_options: StartTlsOptions) => result();
        const value = Reflect.get(target, key, target) as unknown;
        return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  it("refuses when the transport cannot, and leaves the stream usable", async () => {
    const { stream, peer } = setup();
    await expect(stream.startTls({ server: { key: "k", cert: "c" } })).rejects.toThrow(
      "Cannot start TLS: the transport's connections do not support STARTTLS",
    );
    peer.send("still here\n");
    expect(text(await stream.readUntil("\n"))).toBe("still here\n");
  });

  it("refuses while not idle", async () => {
    const [a, b] = createPipe();
    const peer = new Peer(a);
    const stream = new IOStream(upgradable(b, () => Promise.reject(new Error("unused"))));
    peer.send("early");
    await flushMemory();
    await expect(stream.startTls({ client: {} })).rejects.toThrow(/not idle \(5 bytes were received and not read\)/);
    await stream.readBytes(5);
    const pending = stream.readBytes(1);
    await expect(stream.startTls({ client: {} })).rejects.toThrow(/not idle \(a read is pending\)/);
    peer.send("x");
    await pending;
  });

  it("hands over to a new stream with the same options and close callback; the old one is done", async () => {
    const [a, b] = createPipe();
    const [secureA, secureB] = createPipe({ encrypted: true });
    const peer = new Peer(a);
    const securePeer = new Peer(secureA);
    const stream = new IOStream(upgradable(b, () => Promise.resolve(secureB)), { maxBufferSize: 1234 });
    let closeCalls = 0;
    stream.setCloseCallback(() => closeCalls++);
    const secure = await stream.startTls({ client: { servername: "example.com" } });
    expect(secure).not.toBe(stream);
    expect(secure.maxBufferSize).toBe(1234);
    expect(secure.connection.encrypted).toBe(true);
    expect(stream.closed).toBe(true);
    await expect(stream.readBytes(1)).rejects.toThrow(/upgraded to TLS/);
    securePeer.send("hello\n");
    expect(text(await secure.readUntil("\n"))).toBe("hello\n");
    await secure.write("back");
    await flushMemory();
    expect(securePeer.text).toBe("back");
    expect(peer.text).toBe("");
    expect(closeCalls).toBe(0);
    secure.close();
    await flushMemory();
    expect(closeCalls).toBe(1);
  });

  it("closes with the handshake's error when the upgrade fails", async () => {
    const [a, b] = createPipe();
    new Peer(a);
    const failure = Object.assign(new Error("certificate has expired"), { code: "CERT_HAS_EXPIRED" });
    const stream = new IOStream(upgradable(b, () => Promise.reject(failure)));
    let closeCalls = 0;
    stream.setCloseCallback(() => closeCalls++);
    await expect(stream.startTls({ client: {} })).rejects.toBe(failure);
    expect(stream.closed).toBe(true);
    expect(stream.error).toBe(failure);
    await flushMemory();
    expect(closeCalls).toBe(1);
  });
});

describe("IOStream: misc", () => {
  it("passes setNodelay to the connection and exposes it", () => {
    const calls: boolean[] = [];
    const [, b] = createPipe();
    const conn = new Proxy(b, {
      get(target, key) {
        if (key === "setNoDelay") return (value: boolean) => calls.push(value);
        const value = Reflect.get(target, key, target) as unknown;
        return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const stream = new IOStream(conn);
    stream.setNodelay(true);
    stream.setNodelay(false);
    expect(calls).toEqual([true, false]);
    expect(stream.connection.remoteAddress?.family).toBe("memory" satisfies SocketAddress["family"]);
  });

  it("writes strings as UTF-8 and bytes as they are", async () => {
    const { stream, peer } = setup();
    await stream.write("é");
    await stream.write(new Uint8Array([0x21]));
    await stream.write("");
    await flushMemory();
    expect(peer.text).toBe("é!");
  });

  it("matches a regex given as a string, ignoring the g flag", async () => {
    const { stream, peer } = setup();
    peer.send("key=value;next=1;");
    expect(text(await stream.readUntilRegex("=[a-z]+;"))).toBe("key=value;");
    expect(text(await stream.readUntilRegex(/;/g))).toBe("next=1;");
  });
});
