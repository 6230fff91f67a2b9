import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { VirtualClock } from "../../src/core/clock";
import type { ConnectionHandler } from "../../src/core/transport";
import {
  createPipe,
  flushMemory,
  MemoryConnection,
  MemoryNetworkError,
  MemoryTransport,
  type MemoryPipeOptions,
} from "../../src/transports/memory";
import { runTransportSuite } from "../transport-contract";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text: string): Uint8Array => encoder.encode(text);

/** A seeded split rule: cuts each write at pseudo-random offsets. */
function randomSplits(seed: number): (chunk: Uint8Array) => number[] {
  let state = seed >>> 0 || 1;
  const next = (): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
  return (chunk) => {
    const cuts: number[] = [];
    for (let at = 1 + Math.floor(next() * 9000); at < chunk.length; at += 1 + Math.floor(next() * 9000)) cuts.push(at);
    return cuts;
  };
}

function pipeSuite(name: string, options: MemoryPipeOptions, extra: { largePayload?: number } = {}): void {
  runTransportSuite({
    name,
    transport: new MemoryTransport(options),
    listenOptions: () => ({ port: 0 }),
    connectOptions: (address) => ({ port: address.port }),
    createPair: async ({ highWaterMark }) => createPipe({ ...options, highWaterMark }),
    ...extra,
  });
}

pipeSuite("memory pipe", {});
pipeSuite("memory pipe split at every byte", { split: 1 }, { largePayload: 128 * 1024 });
pipeSuite("memory pipe split at random offsets", { split: randomSplits(42) });

runTransportSuite({
  name: "memory transport by path",
  transport: new MemoryTransport(),
  listenOptions: (() => {
    let count = 0;
    return () => ({ path: `suite-${++count}` });
  })(),
  connectOptions: (address) => ({ path: address.address }),
});

{
  const clock = new VirtualClock();
  runTransportSuite({
    name: "memory transport with 5 ms latency on a virtual clock",
    transport: new MemoryTransport({ clock, latency: 5 }),
    listenOptions: () => ({ port: 0 }),
    connectOptions: (address) => ({ port: address.port }),
    advance: () => {
      const at = clock.nextTimerAt;
      if (at === undefined) return false;
      clock.advance(Math.max(0, at - clock.now()));
      return true;
    },
    largePayload: 1024 * 1024,
  });
}

{
  runTransportSuite({
    name: "memory transport with simulated TLS",
    transport: new MemoryTransport(),
    listenOptions: () => ({ port: 0, tls: { key: "key", cert: "cert" } }),
    connectOptions: (address) => ({ port: address.port, tls: true }),
    encrypted: true,
  });
}

/** A handler that keeps everything it is told, for the memory-only tests. */
class Log implements ConnectionHandler {
  readonly chunks: string[] = [];
  readonly events: string[] = [];
  closeError: Error | undefined;
  constructor(readonly onEvent?: (event: string) => void) {}
  data(chunk: Uint8Array): void {
    this.chunks.push(decoder.decode(chunk));
    this.events.push(`data:${decoder.decode(chunk)}`);
    this.onEvent?.("data");
  }
  end(): void {
    this.events.push("end");
    this.onEvent?.("end");
  }
  drain(): void {
    this.events.push("drain");
    this.onEvent?.("drain");
  }
  close(error?: Error): void {
    this.closeError = error;
    this.events.push(error ? `close:${(error as MemoryNetworkError).code}` : "close");
    this.onEvent?.("close");
  }
  get text(): string {
    return this.chunks.join("");
  }
}

describe("memory pipe: delivery", () => {
  it("never delivers inside write: data comes in a later microtask", async () => {
    const [a, b] = createPipe();
    const log = new Log();
    b.setHandler(log);
    a.write(bytes("x"));
    expect(log.events).toEqual([]);
    await flushMemory();
    expect(log.events).toEqual(["data:x"]);
  });

  it("copies written bytes: the writer may reuse its buffer at once", async () => {
    const [a, b] = createPipe();
    const log = new Log();
    b.setHandler(log);
    const buffer = bytes("first");
    a.write(buffer);
    buffer.set(bytes("XXXXX"));
    await flushMemory();
    expect(log.text).toBe("first");
  });

  it("delivers a write of N bytes as one data call without split", async () => {
    const [a, b] = createPipe();
    const log = new Log();
    b.setHandler(log);
    a.write(bytes("hello"));
    a.write(bytes(" world"));
    await flushMemory();
    expect(log.chunks).toEqual(["hello", " world"]);
  });

  it("splits writes at the offsets the rule gives, and only there", async () => {
    const [a, b] = createPipe({ split: (chunk) => (chunk.length === 6 ? [4, 1, 3, 3, 0, 6, 99] : []) });
    const log = new Log();
    b.setHandler(log);
    a.write(bytes("abcdef"));
    a.write(bytes("ghi"));
    await flushMemory();
    expect(log.chunks).toEqual(["a", "bc", "d", "ef", "ghi"]);
  });

  it("splits writes into pieces of at most `split` bytes", async () => {
    const [a, b] = createPipe({ split: 2 });
    const log = new Log();
    b.setHandler(log);
    a.write(bytes("abcde"));
    await flushMemory();
    expect(log.chunks).toEqual(["ab", "cd", "e"]);
  });

  it("delivers the same bytes whatever the splits (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 200 }), { minLength: 1, maxLength: 10 }),
        fc.array(fc.nat(200), { maxLength: 20 }),
        async (writes, cuts) => {
          const [a, b] = createPipe({ split: () => cuts });
          const received: number[] = [];
          let calls = 0;
          b.setHandler({ data: (chunk) => (calls++, received.push(...chunk)), end() {}, drain() {}, close() {} });
          for (const chunk of writes) a.write(chunk);
          await flushMemory();
          expect(received).toEqual(writes.flatMap((chunk) => [...chunk]));
          const expectedCalls = writes.reduce(
            (total, chunk) => total + 1 + new Set(cuts.filter((cut) => cut > 0 && cut < chunk.length)).size,
            0,
          );
          expect(calls).toBe(expectedCalls);
        },
      ),
      { numRuns: 100 },
    );
  });

  it("rejects bad options at construction", () => {
    expect(() => createPipe({ latency: -1 })).toThrow(RangeError);
    expect(() => createPipe({ latency: Infinity })).toThrow(RangeError);
    expect(() => createPipe({ split: 0 })).toThrow(RangeError);
    expect(() => createPipe({ split: 1.5 })).toThrow(RangeError);
    expect(() => createPipe({ highWaterMark: 0 })).toThrow(RangeError);
    expect(() => new MemoryTransport({ latency: -5 })).toThrow(RangeError);
  });

  it("cannot be constructed directly", () => {
    const Constructor = MemoryConnection as unknown as new (...args: unknown[]) => unknown;
    expect(() => new Constructor(Symbol("x"), {}, {}, {}, null)).toThrow(TypeError);
  });

  it("names its ends in its addresses", () => {
    const [a, b] = createPipe({ name: "link" });
    expect(a.localAddress).toEqual({ family: "memory", address: "link:a", port: 0 });
    expect(a.remoteAddress).toEqual(b.localAddress);
    expect(a.peer).toBe(b);
    expect(b.peer).toBe(a);
  });
});

describe("memory pipe: latency on a virtual clock", () => {
  it("delivers nothing until the clock has advanced by the latency", async () => {
    const clock = new VirtualClock();
    const [a, b] = createPipe({ clock, latency: 10 });
    const log = new Log();
    b.setHandler(log);
    a.write(bytes("one"));
    clock.advance(4);
    a.write(bytes("two"));
    a.end();
    await flushMemory();
    expect(log.events).toEqual([]);
    expect(a.inFlightLength).toBe(6);
    expect(a.writableLength).toBe(6);
    clock.advance(5);
    await flushMemory();
    expect(log.events).toEqual([]);
    clock.advance(1);
    await flushMemory();
    expect(log.events).toEqual(["data:one"]);
    expect(a.inFlightLength).toBe(3);
    expect(a.writableLength).toBe(3);
    clock.advance(4);
    await flushMemory();
    expect(log.events).toEqual(["data:one", "data:two", "end"]);
    expect(a.writableLength).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it("delays the reset of destroy by the latency, and drops what was in flight", async () => {
    const clock = new VirtualClock();
    const [a, b] = createPipe({ clock, latency: 10 });
    const log = new Log();
    b.setHandler(log);
    a.setHandler(new Log());
    a.write(bytes("lost"));
    a.destroy();
    clock.advance(9);
    await flushMemory();
    expect(log.events).toEqual([]);
    expect(b.closed).toBe(false);
    clock.advance(1);
    await flushMemory();
    expect(log.events).toEqual(["close:ECONNRESET"]);
  });

  it("lets flushMemory wait for latency on the system clock", async () => {
    const [a, b] = createPipe({ latency: 1 });
    const log = new Log();
    b.setHandler(log);
    a.write(bytes("later"));
    await flushMemory();
    expect(log.text).toBe("later");
  });
});

describe("memory pipe: backpressure", () => {
  it("counts unconsumed bytes, returns false at the mark, and drains once below it", async () => {
    const [a, b] = createPipe({ highWaterMark: 10 });
    const writer = new Log();
    const reader = new Log();
    a.setHandler(writer);
    b.setHandler(reader);
    b.pause();
    expect(a.write(bytes("123456"))).toBe(true);
    expect(a.write(bytes("7890"))).toBe(false);
    expect(a.write(bytes("abc"))).toBe(false);
    await flushMemory();
    expect(a.writableLength).toBe(13);
    expect(b.bufferedLength).toBe(13);
    expect(reader.events).toEqual([]);
    expect(writer.events).toEqual([]);
    b.resume();
    await flushMemory();
    expect(reader.text).toBe("1234567890abc");
    expect(a.writableLength).toBe(0);
    expect(writer.events).toEqual(["drain"]);
  });

  it("drains as soon as the reader has taken enough, even mid-way", async () => {
    const [a, b] = createPipe({ highWaterMark: 4, split: 1 });
    let lengthAtDrain = -1;
    const writer = new Log((event) => {
      if (event === "drain") lengthAtDrain = a.writableLength;
    });
    a.setHandler(writer);
    let taken = 0;
    b.setHandler({
      data: () => {
        if (++taken === 3) b.pause();
      },
      end() {},
      drain() {},
      close() {},
    });
    expect(a.write(bytes("abcdef"))).toBe(false);
    await flushMemory();
    expect(taken).toBe(3);
    expect(a.writableLength).toBe(3);
    expect(lengthAtDrain).toBe(3);
    expect(writer.events).toEqual(["drain"]);
  });

  it("reports a drain owed to a writer without a handler once it sets one", async () => {
    const [a, b] = createPipe({ highWaterMark: 2 });
    b.setHandler(new Log());
    expect(a.write(bytes("abc"))).toBe(false);
    await flushMemory();
    const writer = new Log();
    a.setHandler(writer);
    await flushMemory();
    expect(writer.events).toEqual(["drain"]);
  });
});

describe("memory pipe: closing and faults", () => {
  it("closes both ends once both have ended and everything is delivered", async () => {
    const [a, b] = createPipe({ split: 3 });
    const left = new Log();
    const right = new Log();
    a.setHandler(left);
    b.setHandler(right);
    a.write(bytes("request"));
    a.end();
    await flushMemory();
    expect(right.events).toEqual(["data:req", "data:ues", "data:t", "end"]);
    expect(left.events).toEqual([]);
    b.write(bytes("reply"));
    b.end();
    await flushMemory();
    expect(left.events).toEqual(["data:rep", "data:ly", "end", "close"]);
    expect(right.events).toEqual(["data:req", "data:ues", "data:t", "end", "close"]);
    expect(a.idle).toBe(true);
  });

  it("shows the peer a reset with code ECONNRESET when one end is destroyed", async () => {
    const [a, b] = createPipe();
    const left = new Log();
    const right = new Log();
    a.setHandler(left);
    b.setHandler(right);
    b.pause();
    a.write(bytes("dropped"));
    await flushMemory();
    expect(b.bufferedLength).toBe(7);
    a.destroy();
    await flushMemory();
    expect(left.events).toEqual(["close"]);
    expect(right.events).toEqual(["close:ECONNRESET"]);
    expect(right.closeError).toBeInstanceOf(MemoryNetworkError);
    expect(b.write(bytes("x"))).toBe(false);
    expect(b.bufferedLength).toBe(0);
    expect(a.writableLength).toBe(0);
  });

  it("injects a reset from the network: both ends see ECONNRESET and in-flight data is dropped", async () => {
    const [a, b] = createPipe();
    const left = new Log();
    const right = new Log();
    a.setHandler(left);
    b.setHandler(right);
    a.write(bytes("in flight"));
    b.write(bytes("also in flight"));
    a.reset();
    expect(a.closed && b.closed).toBe(true);
    expect(a.writable || b.writable).toBe(false);
    await flushMemory();
    expect(left.events).toEqual(["close:ECONNRESET"]);
    expect(right.events).toEqual(["close:ECONNRESET"]);
    expect(left.closeError?.message).toMatch(/^Cannot use memory connection .*: the connection was reset$/);
    a.reset();
    await flushMemory();
    expect(left.events).toEqual(["close:ECONNRESET"]);
  });

  it("reports close to a handler set after the connection closed", async () => {
    const [a, b] = createPipe();
    a.setHandler(new Log());
    a.destroy();
    await flushMemory();
    const late = new Log();
    b.setHandler(late);
    await flushMemory();
    expect(late.events).toEqual(["close:ECONNRESET"]);
  });
});

describe("memory transport: the virtual network", () => {
  it("refuses a connect where nobody listens, with ECONNREFUSED", async () => {
    const transport = new MemoryTransport();
    const error = await transport.connect({ port: 8080 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MemoryNetworkError);
    expect((error as MemoryNetworkError).code).toBe("ECONNREFUSED");
    expect((error as Error).message).toBe("Cannot connect to memory port 8080: nothing listens there");
    const byPath = await transport.connect({ path: "nowhere" }).catch((e: unknown) => e);
    expect((byPath as MemoryNetworkError).code).toBe("ECONNREFUSED");
  });

  it("refuses a second listener on the same port or path, with EADDRINUSE", async () => {
    const transport = new MemoryTransport();
    const listener = await transport.listen({ port: 80 }, () => {});
    await expect(transport.listen({ port: 80 }, () => {})).rejects.toMatchObject({ code: "EADDRINUSE" });
    await transport.listen({ path: "p" }, () => {});
    await expect(transport.listen({ path: "p" }, () => {})).rejects.toMatchObject({ code: "EADDRINUSE" });
    await listener.close();
    const again = await transport.listen({ port: 80 }, () => {});
    expect(again.address).toEqual({ family: "memory", address: "localhost", port: 80 });
  });

  it("picks distinct free ports for port 0 and reports the addresses", async () => {
    const transport = new MemoryTransport();
    const first = await transport.listen({ port: 0, host: "example.test" }, () => {});
    const second = await transport.listen({ port: 0 }, () => {});
    expect(first.address.port).toBeGreaterThanOrEqual(49152);
    expect(second.address.port).not.toBe(first.address.port);
    expect(first.address.address).toBe("example.test");
    expect(transport.listening).toHaveLength(2);
    await first.close();
    expect(transport.listening).toEqual([second.address]);
  });

  it("rejects listen and connect options that give neither or both of port and path", async () => {
    const transport = new MemoryTransport();
    await expect(transport.listen({}, () => {})).rejects.toThrow(TypeError);
    await expect(transport.listen({ port: 1, path: "x" }, () => {})).rejects.toThrow(TypeError);
    await expect(transport.listen({ port: 70000 }, () => {})).rejects.toThrow(RangeError);
    await expect(transport.connect({})).rejects.toThrow(TypeError);
  });

  it("simulates TLS: encrypted ends, ALPN by server preference, EPROTO when only one side uses it", async () => {
    const transport = new MemoryTransport();
    let server: MemoryConnection | undefined;
    const secure = await transport.listen({ port: 0, tls: { key: "k", cert: "c", alpnProtocols: ["h2", "http/1.1"] } }, (c) => {
      server = c as MemoryConnection;
    });
    const client = await transport.connect({ port: secure.address.port, tls: { alpnProtocols: ["http/1.1", "h2"] } });
    expect(client.encrypted).toBe(true);
    expect(server!.encrypted).toBe(true);
    expect(client.alpnProtocol).toBe("h2");
    expect(server!.alpnProtocol).toBe("h2");
    await expect(transport.connect({ port: secure.address.port })).rejects.toMatchObject({ code: "EPROTO" });
    const plain = await transport.listen({ port: 0 }, () => {});
    await expect(transport.connect({ port: plain.address.port, tls: true })).rejects.toMatchObject({ code: "EPROTO" });
    const noAlpn = await transport.connect({ port: secure.address.port, tls: true });
    expect(noAlpn.alpnProtocol).toBeNull();
  });

  it("applies the listener's and the client's high-water marks to their own ends", async () => {
    const transport = new MemoryTransport({ highWaterMark: 100 });
    let server: MemoryConnection | undefined;
    const listener = await transport.listen({ port: 0, highWaterMark: 4 }, (c) => {
      server = c as MemoryConnection;
    });
    const client = await transport.connect({ port: listener.address.port, highWaterMark: 8 });
    expect(server!.write(bytes("1234"))).toBe(false);
    expect(client.write(bytes("1234"))).toBe(true);
    expect(client.write(bytes("5678"))).toBe(false);
    const other = await transport.connect({ port: listener.address.port });
    expect(other.write(new Uint8Array(99))).toBe(true);
    expect(other.write(new Uint8Array(1))).toBe(false);
  });
});
