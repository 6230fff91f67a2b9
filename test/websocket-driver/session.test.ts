/**
 * The WebSocket driver over memory pipes on a virtual clock: batching,
 * keep-alive pings, the close handshake and its timeouts, backpressure in
 * both directions, and handler promises.
 */
import { Buffer } from "node:buffer";
import { describe, expect, it } from "vitest";
import { VirtualClock } from "../../src/core/clock";
import type { Connection } from "../../src/core/transport";
import { WebSocketClosedError, WebSocketSession, type WebSocketSessionOptions } from "../../src/server/websocket-session";
import { createPipe, type MemoryPipeOptions } from "../../src/transports/memory";
import {
  BINARY,
  CLOSE,
  closeBody,
  closeOf,
  deferred,
  flushMemory,
  frame,
  parseFrames,
  PING,
  PONG,
  rawPeer,
  RecordingLogger,
  TEXT,
  type RawPeer,
} from "./helpers";

interface Recorded {
  messages: Array<string | Uint8Array>;
  pings: string[];
  pongs: string[];
  closes: Array<[number, string]>;
}

interface Pair {
  session: WebSocketSession;
  peer: RawPeer;
  clock: VirtualClock;
  logger: RecordingLogger;
  seen: Recorded;
  /** The session's end of the pipe. */
  conn: Connection;
  /** Frames the peer received. */
  frames(): ReturnType<typeof parseFrames>;
}

type PairOptions = Partial<Omit<WebSocketSessionOptions, "handler">> & {
  onMessage?: (message: string | Uint8Array, session: WebSocketSession) => void | Promise<void>;
  pipe?: MemoryPipeOptions;
  echoEnd?: boolean;
  start?: boolean;
};

/** A session (server role unless said otherwise) with a raw peer on the other end of a pipe. */
function pair(options: PairOptions = {}): Pair {
  const clock = (options.clock as VirtualClock | undefined) ?? new VirtualClock();
  const logger = new RecordingLogger();
  const [peerEnd, sessionEnd] = createPipe({ clock, ...options.pipe });
  const peer = rawPeer(peerEnd, options.echoEnd ?? true);
  const seen: Recorded = { messages: [], pings: [], pongs: [], closes: [] };
  const { onMessage, pipe: _pipe, echoEnd: _echoEnd, start, ...rest } = options;
  const session: WebSocketSession = new WebSocketSession(sessionEnd, {
    role: "server",
    clock,
    logger,
    ...rest,
    handler: {
      onMessage: (message) => {
        seen.messages.push(message);
        return onMessage?.(message, session);
      },
      onPing: (data) => void seen.pings.push(Buffer.from(data).toString()),
      onPong: (data) => void seen.pongs.push(Buffer.from(data).toString()),
      onClose: (code, reason) => void seen.closes.push([code, reason]),
    },
  });
  if (start !== false) session.start();
  return { session, peer, clock, logger, seen, conn: sessionEnd, frames: () => parseFrames(peer.bytes()) };
}

describe("input and batching", () => {
  it("delivers text and binary messages and answers each read with one write", async () => {
    const t = pair({ onMessage: (m, s) => void s.send(m) });
    t.peer.send(Buffer.concat([frame(TEXT, "one"), frame(BINARY, Uint8Array.of(1, 2, 3)), frame(TEXT, "two")]));
    await flushMemory();
    expect(t.seen.messages).toEqual(["one", Buffer.from([1, 2, 3]), "two"]);
    // Three echoes produced while handling one read: one chunk on the wire.
    expect(t.peer.chunks).toHaveLength(1);
    expect(t.frames().map((f) => [f.opcode, f.payload.toString("latin1")])).toEqual([
      [TEXT, "one"],
      [BINARY, "\x01\x02\x03"],
      [TEXT, "two"],
    ]);
  });

  it("an echo that awaits each send answers the messages of one read with one write once the transport keeps up", async () => {
    const t = pair({ onMessage: (m, s) => s.send(m) });
    t.peer.send(frame(TEXT, "first"));
    await flushMemory();
    // Nothing was known of the transport yet: that send waited for its own write.
    expect(t.peer.chunks).toHaveLength(1);
    const names = Array.from({ length: 16 }, (_, i) => `m${i}`);
    t.peer.send(Buffer.concat(names.map((n) => frame(TEXT, n))));
    await flushMemory();
    expect(t.seen.messages).toEqual(["first", ...names]);
    expect(t.peer.chunks).toHaveLength(2);
    expect(t.frames().map((f) => f.payload.toString())).toEqual(["first", ...names]);
  });

  it("writes what a handler sent while it waits on something slow, and reads on once it is done", async () => {
    const gate = deferred();
    const t = pair({
      onMessage: async (m, s) => {
        await s.send(m);
        if (m === "slow") await gate.promise;
      },
    });
    t.peer.send(frame(TEXT, "warm"));
    await flushMemory();
    t.peer.send(Buffer.concat([frame(TEXT, "slow"), frame(TEXT, "later")]));
    await flushMemory();
    expect(t.seen.messages).toEqual(["warm", "slow"]);
    expect(t.frames().map((f) => f.payload.toString())).toEqual(["warm", "slow"]);
    gate.resolve();
    await flushMemory();
    expect(t.frames().map((f) => f.payload.toString())).toEqual(["warm", "slow", "later"]);
  });

  it("joins sends made in one tick outside a read into one write", async () => {
    const t = pair();
    const sent = [t.session.send("a"), t.session.send("b"), t.session.send(Uint8Array.of(9))];
    await Promise.all(sent);
    await flushMemory();
    expect(t.peer.chunks).toHaveLength(1);
    expect(t.frames().map((f) => f.opcode)).toEqual([TEXT, TEXT, BINARY]);
  });

  it("feeds the bytes that came with the handshake before anything else", async () => {
    const t = pair({ trailingData: frame(TEXT, "early") });
    t.peer.send(frame(TEXT, "later"));
    await flushMemory();
    expect(t.seen.messages).toEqual(["early", "later"]);
  });

  it("holds events until start(), and until an async start settles", async () => {
    const gate = deferred();
    const t = pair({ start: false });
    t.peer.send(frame(TEXT, "queued"));
    await flushMemory();
    expect(t.seen.messages).toEqual([]);
    t.session.start(gate.promise);
    await flushMemory();
    expect(t.seen.messages).toEqual([]);
    gate.resolve();
    await flushMemory();
    expect(t.seen.messages).toEqual(["queued"]);
  });

  it("sends bytes as text when asked, and refuses bytes that are not UTF-8 as text", async () => {
    const t = pair();
    await t.session.send(Buffer.from("héllo"), { binary: false });
    await t.session.send("as binary", { binary: true });
    expect(() => t.session.send(Uint8Array.of(0xff), { binary: false })).toThrow(TypeError);
    await flushMemory();
    expect(t.frames().map((f) => [f.opcode, f.payload.toString()])).toEqual([
      [TEXT, "héllo"],
      [BINARY, "as binary"],
    ]);
  });

  it("fails the connection with 1009 on a message over maxMessageSize", async () => {
    const t = pair({ maxMessageSize: 1000 });
    t.peer.send(frame(BINARY, new Uint8Array(1001)));
    await flushMemory();
    const frames = t.frames();
    expect(closeOf(frames[frames.length - 1]!).code).toBe(1009);
    expect(t.peer.closed).toBe(true);
    expect(t.seen.closes).toEqual([[1009, ""]]);
    expect(t.session.error?.closeCode).toBe(1009);
    expect(t.seen.messages).toEqual([]);
  });
});

describe("handler promises", () => {
  it("takes no further event while onMessage's promise is pending, and pauses the transport once input arrives meanwhile", async () => {
    const gates = [deferred(), deferred()];
    let calls = 0;
    const t = pair({ onMessage: () => gates[calls++]?.promise });
    t.peer.send(Buffer.concat([frame(TEXT, "1"), frame(TEXT, "2"), frame(PING, "p")]));
    await flushMemory();
    expect(t.seen.messages).toEqual(["1"]);
    // The first read that comes while the promise is pending is kept in the
    // engine and pauses reading; what is written after it stays in the pipe.
    t.peer.send(frame(TEXT, "3"));
    await flushMemory();
    expect(t.peer.conn.writableLength).toBe(0);
    t.peer.send(frame(TEXT, "4"));
    await flushMemory();
    expect(t.peer.conn.writableLength).toBeGreaterThan(0);
    expect(t.seen.messages).toEqual(["1"]);
    gates[0]!.resolve();
    await flushMemory();
    expect(t.seen.messages).toEqual(["1", "2"]);
    expect(t.seen.pings).toEqual([]);
    gates[1]!.resolve();
    await flushMemory();
    expect(t.seen.messages).toEqual(["1", "2", "3", "4"]);
    expect(t.seen.pings).toEqual(["p"]);
    expect(t.frames().map((f) => f.opcode)).toEqual([PONG]);
    expect(t.peer.conn.writableLength).toBe(0);
  });

  it("does not pause the transport for a promise that settles before more input arrives", async () => {
    const t = pair({ onMessage: () => Promise.resolve() });
    let pauses = 0;
    const pause = t.conn.pause.bind(t.conn);
    t.conn.pause = () => {
      pauses++;
      pause();
    };
    for (let i = 0; i < 5; i++) {
      t.peer.send(frame(TEXT, String(i)));
      await flushMemory();
    }
    expect(t.seen.messages).toEqual(["0", "1", "2", "3", "4"]);
    expect(pauses).toBe(0);
  });

  it("takes the next message at once when onMessage returns a send the transport took (a settled promise)", async () => {
    const order: string[] = [];
    const t = pair({
      onMessage: (m, s) => {
        order.push(String(m));
        if (m === "m0") queueMicrotask(() => order.push("tick"));
        return s.send(m);
      },
    });
    t.peer.send(frame(TEXT, "first"));
    await flushMemory();
    t.peer.send(Buffer.concat(["m0", "m1", "m2", "m3"].map((n) => frame(TEXT, n))));
    await flushMemory();
    // All four before any microtask: no wait per message, as an await of a done future in Python.
    expect(order).toEqual(["first", "m0", "m1", "m2", "m3", "tick"]);
    expect(t.peer.chunks).toHaveLength(2);
    expect(t.frames().map((f) => f.payload.toString())).toEqual(["first", "m0", "m1", "m2", "m3"]);
  });

  it("takes a send or ping refused because this connection is closing as no failure, but any other error as one", async () => {
    const closing = pair({
      onMessage: (m, s) => {
        void s.close(1000, "bye");
        return s.send(m);
      },
    });
    closing.peer.send(frame(TEXT, "x"));
    await flushMemory();
    expect(closing.logger.messages("error")).toEqual([]);
    expect(closing.frames().map((f) => [f.opcode, f.opcode === CLOSE ? closeOf(f).code : 0])).toEqual([[CLOSE, 1000]]);
    // The same thrown at once (a ping after our own close).
    const pinging = pair({
      onMessage: (_m, s) => {
        void s.close(1000, "bye");
        s.ping();
      },
    });
    pinging.peer.send(frame(TEXT, "x"));
    await flushMemory();
    expect(pinging.logger.messages("error")).toEqual([]);
    expect(pinging.frames().map((f) => f.opcode)).toEqual([CLOSE]);
    // A WebSocketClosedError from elsewhere (another connection's send) while this one is open is the handler's failure.
    const open = pair({ onMessage: () => Promise.reject(new WebSocketClosedError()) });
    open.peer.send(frame(TEXT, "x"));
    await flushMemory();
    expect(open.logger.messages("error")).toEqual(["Uncaught error in WebSocket onMessage"]);
    expect(closeOf(open.frames()[0]!).code).toBe(1011);
  });

  it("closes with 1011 when onMessage throws or rejects, and delivers nothing more", async () => {
    for (const fail of [
      () => {
        throw new Error("sync boom");
      },
      () => Promise.reject(new Error("async boom")),
    ]) {
      const t = pair({ onMessage: fail });
      t.peer.send(Buffer.concat([frame(TEXT, "x"), frame(TEXT, "y")]));
      await flushMemory();
      expect(t.seen.messages).toEqual(["x"]);
      const frames = t.frames();
      expect(frames.map((f) => f.opcode)).toEqual([CLOSE]);
      expect(closeOf(frames[0]!).code).toBe(1011);
      expect(t.logger.messages("error")).toEqual(["Uncaught error in WebSocket onMessage"]);
      t.peer.send(frame(CLOSE, closeBody(1011)));
      await flushMemory();
      expect(t.seen.closes).toEqual([[1011, ""]]);
      expect(t.peer.closed).toBe(true);
    }
  });
});

describe("keep-alive pings", () => {
  it("pings every interval and stays open while the peer answers", async () => {
    const t = pair({ pingInterval: 1000, pingTimeout: 500 });
    for (let i = 0; i < 3; i++) {
      t.clock.advance(1000);
      await flushMemory();
      const last = t.frames()[t.frames().length - 1]!;
      expect(last.opcode).toBe(PING);
      t.peer.send(frame(PONG, last.payload));
      await flushMemory();
    }
    t.clock.advance(400);
    await flushMemory();
    expect(t.frames().filter((f) => f.opcode === PING)).toHaveLength(3);
    expect(t.seen.pongs).toEqual(["", "", ""]);
    expect(t.session.state).toBe("OPEN");
  });

  it("closes as Tornado does (a close frame without a code) when nothing arrives within pingTimeout of a ping", async () => {
    const t = pair({ pingInterval: 1000, pingTimeout: 500, echoEnd: false });
    t.clock.advance(1000);
    await flushMemory();
    expect(t.frames().map((f) => f.opcode)).toEqual([PING]);
    t.clock.advance(499);
    await flushMemory();
    expect(t.session.state).toBe("OPEN");
    t.clock.advance(1);
    await flushMemory();
    const frames = t.frames();
    expect(frames.map((f) => f.opcode)).toEqual([PING, CLOSE]);
    expect(frames[1]!.payload.length).toBe(0);
    expect(t.session.state).toBe("LOCAL_CLOSING");
    // The dead peer never answers: the close timeout destroys the connection.
    t.clock.advance(4999);
    await flushMemory();
    expect(t.peer.closed).toBe(false);
    t.clock.advance(1);
    await flushMemory();
    expect(t.peer.closed).toBe(true);
    expect(t.seen.closes).toEqual([[1006, ""]]);
  });

  it("counts any input as a sign of life, not only pongs", async () => {
    const t = pair({ pingInterval: 1000, pingTimeout: 1500 });
    for (let i = 0; i < 10; i++) {
      t.clock.advance(500);
      t.peer.send(frame(TEXT, `m${i}`));
      await flushMemory();
    }
    expect(t.session.state).toBe("OPEN");
    expect(t.frames().filter((f) => f.opcode === PING).length).toBeGreaterThanOrEqual(4);
    expect(t.frames().some((f) => f.opcode === CLOSE)).toBe(false);
  });

  it("defaults the ping timeout to max(3 * interval, 30 s), as Tornado", async () => {
    const t = pair({ pingInterval: 1000 });
    t.clock.advance(1000 + 29_999);
    await flushMemory();
    expect(t.frames().some((f) => f.opcode === CLOSE)).toBe(false);
    expect(t.frames().filter((f) => f.opcode === PING)).toHaveLength(30);
    t.clock.advance(1);
    await flushMemory();
    expect(t.frames().some((f) => f.opcode === CLOSE)).toBe(true);
  });

  it("does not blame the peer while its own onMessage holds the input back", async () => {
    const gate = deferred();
    const t = pair({ pingInterval: 1000, pingTimeout: 500, onMessage: () => gate.promise });
    t.peer.send(frame(TEXT, "slow"));
    await flushMemory();
    t.clock.advance(1000);
    await flushMemory();
    // The peer answers, but the pong waits behind the pending handler.
    t.peer.send(frame(PONG));
    t.clock.advance(5000);
    await flushMemory();
    expect(t.session.state).toBe("OPEN");
    gate.resolve();
    await flushMemory();
    expect(t.seen.pongs.length).toBeGreaterThan(0);
    t.clock.advance(499);
    await flushMemory();
    expect(t.session.state).toBe("OPEN");
  });

  it("stops pinging once the connection closes", async () => {
    const t = pair({ pingInterval: 1000 });
    t.peer.send(frame(CLOSE, closeBody(1000)));
    await flushMemory();
    expect(t.peer.closed).toBe(true);
    expect(t.clock.pendingTimers).toBe(0);
  });
});

describe("the close handshake", () => {
  it("server side, started by us: sends the close, sees the answer, closes TCP first", async () => {
    const t = pair();
    const closed = t.session.close(4000, "bye");
    await flushMemory();
    const frames = t.frames();
    expect(frames.map((f) => f.opcode)).toEqual([CLOSE]);
    expect(closeOf(frames[0]!)).toEqual({ code: 4000, reason: "bye" });
    expect(t.session.isClosing).toBe(true);
    await expect(t.session.send("late")).rejects.toBeInstanceOf(WebSocketClosedError);
    expect(() => t.session.ping()).toThrow(WebSocketClosedError);
    expect(t.peer.ended).toBe(false);
    t.peer.send(frame(CLOSE, closeBody(4000, "ok")));
    await flushMemory();
    expect(t.peer.ended).toBe(true);
    await closed;
    expect(t.seen.closes).toEqual([[4000, "ok"]]);
    expect(t.session.closeCode).toBe(4000);
  });

  it("closed resolves whether it is asked for before or only after the transport closed", async () => {
    const early = pair();
    const waiting = early.session.closed;
    expect(early.session.closed).toBe(waiting);
    let resolved = false;
    void waiting.then(() => (resolved = true));
    await flushMemory();
    expect(resolved).toBe(false);
    early.peer.send(frame(CLOSE, closeBody(1000)));
    await flushMemory();
    expect(resolved).toBe(true);

    const late = pair();
    late.peer.send(frame(CLOSE, closeBody(1000)));
    await flushMemory();
    expect(late.session.isClosed).toBe(true);
    await expect(late.session.closed).resolves.toBeUndefined();
    await expect(late.session.close()).resolves.toBeUndefined();
  });

  it("server side, started by the peer: echoes the code and closes TCP", async () => {
    const t = pair();
    t.peer.send(frame(CLOSE, closeBody(1001, "leaving")));
    await flushMemory();
    expect(closeOf(t.frames()[0]!)).toEqual({ code: 1001, reason: "" });
    expect(t.peer.closed).toBe(true);
    expect(t.seen.closes).toEqual([[1001, "leaving"]]);
    expect(t.clock.pendingTimers).toBe(0);
  });

  it("reports 1005 for a close frame without a code, and a reason alone sends 1000", async () => {
    const t = pair();
    void t.session.close(undefined, "just a reason");
    await flushMemory();
    expect(closeOf(t.frames()[0]!)).toEqual({ code: 1000, reason: "just a reason" });
    t.peer.send(frame(CLOSE));
    await flushMemory();
    expect(t.seen.closes).toEqual([[1005, ""]]);
  });

  it("destroys the connection when the peer never answers our close", async () => {
    const t = pair({ closeTimeout: 2000, echoEnd: false });
    void t.session.close(1000);
    await flushMemory();
    t.clock.advance(1999);
    await flushMemory();
    expect(t.peer.closed).toBe(false);
    t.clock.advance(1);
    await flushMemory();
    expect(t.peer.closed).toBe(true);
    expect(t.seen.closes).toEqual([[1006, ""]]);
  });

  it("destroys the connection when the peer answers but never closes its side after our FIN", async () => {
    const t = pair({ closeTimeout: 2000, echoEnd: false });
    t.peer.send(frame(CLOSE, closeBody(1000)));
    await flushMemory();
    expect(t.peer.ended).toBe(true);
    expect(t.peer.closed).toBe(false);
    t.clock.advance(2000);
    await flushMemory();
    expect(t.peer.closed).toBe(true);
    expect(t.seen.closes).toEqual([[1000, ""]]);
  });

  it("client side: waits for the server to close TCP, then closes itself after the timeout", async () => {
    const t = pair({ role: "client", closeTimeout: 3000, echoEnd: false });
    void t.session.close(1000, "done");
    await flushMemory();
    const sent = t.frames()[0]!;
    expect(sent.masked).toBe(true);
    expect(closeOf(sent)).toEqual({ code: 1000, reason: "done" });
    t.peer.send(frame(CLOSE, closeBody(1000), { mask: null }));
    await flushMemory();
    expect(t.session.state).toBe("CLOSED");
    // RFC 6455 §7.1.1: the client waits for the server's TCP close.
    expect(t.peer.ended).toBe(false);
    t.clock.advance(3000);
    await flushMemory();
    expect(t.peer.ended).toBe(true);
    t.peer.conn.end();
    await flushMemory();
    expect(t.peer.closed).toBe(true);
    expect(t.seen.closes).toEqual([[1000, ""]]);
  });

  it("client side: closes as soon as the server closes TCP", async () => {
    const t = pair({ role: "client" });
    t.peer.send(frame(CLOSE, closeBody(1000, "server done"), { mask: null }));
    await flushMemory();
    expect(closeOf(t.frames()[0]!).code).toBe(1000);
    t.peer.conn.end();
    await flushMemory();
    expect(t.peer.closed).toBe(true);
    expect(t.seen.closes).toEqual([[1000, "server done"]]);
  });

  it("reports 1006 when the link breaks without a close frame, and rejects sends that wait", async () => {
    const t = pair({ pipe: { highWaterMark: 16 } });
    t.peer.conn.pause();
    const first = t.session.send("x".repeat(100));
    await flushMemory();
    const second = t.session.send("queued");
    await flushMemory();
    t.peer.conn.reset();
    await flushMemory();
    await expect(first).rejects.toBeInstanceOf(WebSocketClosedError);
    await expect(second).rejects.toBeInstanceOf(WebSocketClosedError);
    expect(t.seen.closes).toEqual([[1006, ""]]);
    expect(t.session.isClosed).toBe(true);
  });

  it("answers a peer that half-closes without a close frame by closing too", async () => {
    const t = pair();
    t.peer.conn.end();
    await flushMemory();
    expect(t.peer.ended).toBe(true);
    expect(t.peer.closed).toBe(true);
    expect(t.seen.closes).toEqual([[1006, ""]]);
  });
});

describe("backpressure", () => {
  it("a slow reader pauses an awaiting writer; memory stays near the high-water mark", async () => {
    const hwm = 4096;
    const t = pair({ pipe: { highWaterMark: hwm } });
    t.peer.conn.pause();
    const payload = "x".repeat(1000);
    let sent = 0;
    const writer = (async () => {
      for (let i = 0; i < 200; i++) {
        await t.session.send(payload);
        sent++;
      }
    })();
    await flushMemory();
    // 200 KB to send, but the writer stopped near the high-water mark.
    expect(sent).toBeLessThanOrEqual(5);
    const writable = t.session.bufferedAmount;
    expect(writable).toBeLessThanOrEqual(hwm + 2 * 1004);
    t.peer.conn.resume();
    await writer;
    await flushMemory();
    expect(sent).toBe(200);
    const frames = t.frames();
    expect(frames).toHaveLength(200);
    expect(frames.every((f) => f.payload.toString() === payload)).toBe(true);
  });

  it("messages sent without awaiting wait unencoded in order while the transport is full", async () => {
    const t = pair({ pipe: { highWaterMark: 1024 } });
    t.peer.conn.pause();
    const promises = Array.from({ length: 50 }, (_, i) => t.session.send(`${i}:${"y".repeat(200)}`));
    await flushMemory();
    // The transport holds about one high-water mark; the rest waits in the queue.
    expect(t.peer.conn.peer.writableLength).toBeLessThanOrEqual(1024 + 64 * 1024);
    expect(t.session.bufferedAmount).toBeGreaterThanOrEqual(50 * 200);
    let settled = 0;
    for (const p of promises) void p.then(() => settled++);
    await flushMemory();
    expect(settled).toBeLessThan(50);
    t.peer.conn.resume();
    await Promise.all(promises);
    await flushMemory();
    expect(t.frames().map((f) => f.payload.toString().split(":")[0])).toEqual(Array.from({ length: 50 }, (_, i) => String(i)));
  });

  it("folds the pongs owed while the output is full into one for the latest ping", async () => {
    const t = pair({ pipe: { highWaterMark: 64 } });
    t.peer.conn.pause();
    void t.session.send("z".repeat(200));
    await flushMemory();
    t.peer.send(Buffer.concat([frame(PING, "a"), frame(PING, "b"), frame(PING, "c")]));
    await flushMemory();
    expect(t.seen.pings).toEqual(["a", "b", "c"]);
    t.peer.conn.resume();
    await flushMemory();
    const pongs = t.frames().filter((f) => f.opcode === PONG);
    expect(pongs.map((f) => f.payload.toString())).toEqual(["c"]);
  });

  it("drops queued messages when closing (their promises reject) but sends those already handed over", async () => {
    const t = pair({ pipe: { highWaterMark: 64 } });
    t.peer.conn.pause();
    const handed = t.session.send("first".repeat(20));
    await flushMemory();
    const queued = t.session.send("second");
    await flushMemory();
    void t.session.close(1000);
    await expect(queued).rejects.toBeInstanceOf(WebSocketClosedError);
    t.peer.conn.resume();
    await handed;
    await flushMemory();
    expect(t.frames().map((f) => f.opcode)).toEqual([TEXT, CLOSE]);
  });
});
