/**
 * What the session keeps out of itself to stay small while idle: the
 * settings shared by sessions made with the same options, and the close,
 * ping and backlog state made on first use. Each test checks that the
 * shared or late state behaves as if every session held its own.
 */
import { Buffer } from "node:buffer";
import { afterEach, describe, expect, it, vi } from "vitest";
import { VirtualClock } from "../../src/core/clock";
import { WebSocketClosedError, WebSocketSession, type WebSocketSessionOptions } from "../../src/server/websocket-session";
import { createPipe, type MemoryPipeOptions } from "../../src/transports/memory";
import { CLOSE, closeBody, closeOf, flushMemory, frame, parseFrames, PING, PONG, rawPeer, RecordingLogger, TEXT, type RawPeer } from "./helpers";

interface Pair {
  session: WebSocketSession;
  peer: RawPeer;
  closes: Array<[number, string]>;
  frames(): ReturnType<typeof parseFrames>;
}

/** A server session on a pipe with a raw peer; echoes when `echo` is set. */
function pair(options: Partial<Omit<WebSocketSessionOptions, "handler">> & { pipe?: MemoryPipeOptions; echoEnd?: boolean; echo?: boolean } = {}): Pair {
  const { pipe, echoEnd, echo, ...rest } = options;
  const [peerEnd, sessionEnd] = createPipe({ clock: rest.clock, ...pipe });
  const peer = rawPeer(peerEnd, echoEnd ?? true);
  const closes: Array<[number, string]> = [];
  const session: WebSocketSession = new WebSocketSession(sessionEnd, {
    role: "server",
    ...rest,
    handler: {
      onMessage: (message) => (echo === true ? session.send(message) : undefined),
      onClose: (code, reason) => void closes.push([code, reason]),
    },
  });
  session.start();
  return { session, peer, closes, frames: () => parseFrames(peer.bytes()) };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("settings shared by sessions made with the same options", () => {
  it("a session made right after another that differs in one option keeps its own clock, logger and timeouts", async () => {
    const clock = new VirtualClock();
    const otherClock = new VirtualClock();
    const logger = new RecordingLogger();
    const otherLogger = new RecordingLogger();
    const base = { clock, logger, closeTimeout: 1000, echoEnd: false };
    // Each variant is made just after a session with the base options, whose settings it must not reuse.
    const plain = [pair(base)];
    const longer = pair({ ...base, closeTimeout: 2000 });
    plain.push(pair(base));
    const logged = pair({ ...base, logger: otherLogger });
    plain.push(pair(base));
    const clocked = pair({ ...base, clock: otherClock });
    plain.push(pair(base));
    // The default ping timeout is max(3 * 300, 30000): the same as the base sessions'.
    const pinging = pair({ ...base, pingInterval: 300 });
    const strict = pair({ ...base, pingInterval: 300, pingTimeout: 100 });
    const all = [...plain, longer, logged, clocked, pinging, strict];

    clock.advance(300);
    await flushMemory();
    expect(all.map((t) => t.frames().map((f) => f.opcode))).toEqual([[], [], [], [], [], [], [], [PING], [PING]]);
    // No answer: only the session with a 100 ms ping timeout gives up.
    clock.advance(100);
    await flushMemory();
    expect(pinging.frames().map((f) => f.opcode)).toEqual([PING]);
    expect(strict.frames().map((f) => f.opcode)).toEqual([PING, CLOSE]);

    // The peer never answers a close: each session destroys its connection after its own closeTimeout.
    for (const t of all) void t.session.close(1000);
    await flushMemory();
    clock.advance(999);
    await flushMemory();
    expect(all.map((t) => t.peer.closed)).toEqual([false, false, false, false, false, false, false, false, false]);
    clock.advance(1);
    await flushMemory();
    expect(all.map((t) => t.peer.closed)).toEqual([true, true, true, true, false, true, false, true, true]);
    clock.advance(1000);
    await flushMemory();
    expect(longer.peer.closed).toBe(true);
    expect(clocked.peer.closed).toBe(false);
    otherClock.advance(1000);
    await flushMemory();
    expect(clocked.peer.closed).toBe(true);

    const timedOut = (l: RecordingLogger): string[] => l.messages("debug").filter((m) => m.startsWith("WebSocket close handshake timed out"));
    const after = (ms: number): string => `WebSocket close handshake timed out after ${ms} ms`;
    // Six on the base clock, then `longer`, then `clocked` on its own clock.
    expect(timedOut(logger)).toEqual([...Array<string>(6).fill(after(1000)), after(2000), after(1000)]);
    expect(timedOut(otherLogger)).toEqual([after(1000)]);
    for (const t of all) expect(t.closes).toEqual([[1006, ""]]);
  });

  it("sessions made without a logger report handler errors on the console", async () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    for (let i = 0; i < 2; i++) {
      const [peerEnd, sessionEnd] = createPipe();
      const peer = rawPeer(peerEnd);
      const session = new WebSocketSession(sessionEnd, {
        role: "server",
        handler: {
          onMessage: () => {
            throw new Error(`boom ${i}`);
          },
          onClose: () => {},
        },
      });
      session.start();
      peer.send(frame(TEXT, "hi"));
      await flushMemory();
      expect(closeOf(parseFrames(peer.bytes())[0]!).code).toBe(1011);
    }
    expect(error.mock.calls.map((c) => [c[0], (c[1] as Error).message])).toEqual([
      ["Uncaught error in WebSocket onMessage", "boom 0"],
      ["Uncaught error in WebSocket onMessage", "boom 1"],
    ]);
  });
});

describe("the close state, made when closing begins", () => {
  it("closeCode, closeReason and error stay null while open, even once `closed` was asked for", async () => {
    const t = pair({ clock: new VirtualClock(), echo: true });
    const closed = t.session.closed;
    expect([t.session.closeCode, t.session.closeReason, t.session.error, t.session.isClosing]).toEqual([null, null, null, false]);
    t.peer.send(frame(TEXT, "still open"));
    await flushMemory();
    expect(t.frames().map((f) => f.payload.toString())).toEqual(["still open"]);
    expect(t.session.closeCode).toBeNull();

    // Invalid UTF-8 in a text message: the peer broke the protocol (1007).
    t.peer.send(frame(TEXT, Uint8Array.of(0xff)));
    await flushMemory();
    await closed;
    expect(t.session.error?.code).toBe("WS_ERR_INVALID_UTF8");
    // The code we failed the connection with is kept when the transport closes.
    expect([t.session.closeCode, t.session.closeReason]).toEqual([1007, ""]);
    expect(t.closes).toEqual([[1007, ""]]);
  });

  it("keeps the peer's close code when the transport is destroyed afterwards", async () => {
    const clock = new VirtualClock();
    const t = pair({ clock, closeTimeout: 3000, echoEnd: false });
    t.peer.send(frame(CLOSE, closeBody(4001, "later")));
    await flushMemory();
    expect(t.peer.ended).toBe(true);
    expect([t.session.closeCode, t.session.closeReason, t.session.error]).toEqual([4001, "later", null]);
    // The peer never closes its side: the linger timer destroys the connection.
    clock.advance(2999);
    await flushMemory();
    expect(t.peer.closed).toBe(false);
    clock.advance(1);
    await flushMemory();
    expect(t.peer.closed).toBe(true);
    expect(t.closes).toEqual([[4001, "later"]]);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe("the output state", () => {
  it("sends of one turn share one promise, which rejects if the link breaks before it is written", async () => {
    const t = pair();
    t.peer.conn.reset();
    const first = t.session.send("a");
    const second = t.session.send("b");
    expect(second).toBe(first);
    let outcome: unknown = "pending";
    first.then(
      () => (outcome = "resolved"),
      (err: unknown) => (outcome = err),
    );
    await flushMemory();
    expect(outcome).toBeInstanceOf(WebSocketClosedError);
    expect(t.closes).toEqual([[1006, ""]]);
  });

  it("a connection blocked and drained again and again queues, folds pongs and delivers in order each time", async () => {
    const t = pair({ pipe: { highWaterMark: 64 } });
    let next = 0;
    const sent: Array<Promise<void>> = [];
    for (let round = 0; round < 3; round++) {
      t.peer.conn.pause();
      sent.push(t.session.send("x".repeat(200)));
      await flushMemory();
      for (let i = 0; i < 3; i++) sent.push(t.session.send(`m${next++}`));
      // No ping in the middle round: no pong is owed at its drain.
      if (round !== 1) t.peer.send(Buffer.concat([frame(PING, `a${round}`), frame(PING, `b${round}`)]));
      await flushMemory();
      expect(t.session.bufferedAmount).toBeGreaterThan(200);
      t.peer.conn.resume();
      await Promise.all(sent);
      await flushMemory();
    }
    const frames = t.frames();
    expect(frames.filter((f) => f.opcode === TEXT).map((f) => f.payload.toString().slice(0, 2))).toEqual(["xx", "m0", "m1", "m2", "xx", "m3", "m4", "m5", "xx", "m6", "m7", "m8"]);
    expect(frames.filter((f) => f.opcode === PONG).map((f) => f.payload.toString())).toEqual(["b0", "b2"]);
    expect(t.session.bufferedAmount).toBe(0);
  });
});
