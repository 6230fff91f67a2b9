/**
 * forkProcesses and graceful shutdown with real processes (the app is
 * test/fixtures/cluster-app.ts, which reports what happens on stdout): two
 * workers share a port; a crashed worker is restarted with its task id, up to
 * maxRestarts; SIGTERM and SIGINT finish requests in flight and close
 * WebSockets with 1001; under load, no request that a worker took in is lost.
 */
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { websocketConnect } from "../../src/client/websocket";
import { ClientConnection } from "../../src/protocols/http1";

const fixture = fileURLToPath(new URL("../fixtures/cluster-app.ts", import.meta.url));

interface App {
  child: ChildProcess;
  port: number;
  lines: string[];
  exited: Promise<number | null>;
  waitFor(predicate: (lines: string[]) => boolean): Promise<void>;
}

const children: ChildProcess[] = [];
afterEach(() => {
  // The app runs in its own process group: take down whatever is left of it.
  for (const c of children.splice(0)) {
    try {
      process.kill(-c.pid!, "SIGKILL");
    } catch {
      // ESRCH: all gone already.
    }
  }
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

const linesStarting = (lines: string[], prefix: string): string[] => lines.filter((l) => l.startsWith(`${prefix} `)).map((l) => l.slice(prefix.length + 1));

async function startApp(env: Record<string, string> = {}): Promise<App> {
  const port = await freePort();
  // Its own process group, so that a signal can go to the primary and the
  // workers at once, as a terminal's Ctrl-C does.
  const child = spawn(process.execPath, ["--import", "tsx", fixture], {
    env: { ...process.env, PORT: String(port), ...env },
    stdio: ["ignore", "pipe", "inherit"],
    detached: true,
  });
  children.push(child);
  const lines: string[] = [];
  const watchers: Array<() => void> = [];
  let rest = "";
  child.stdout!.setEncoding("utf8");
  child.stdout!.on("data", (text: string) => {
    rest += text;
    const parts = rest.split("\n");
    rest = parts.pop()!;
    lines.push(...parts);
    for (const w of watchers.splice(0)) w();
  });
  // "close" comes after the last of stdout (the workers share the pipe and may outlive the primary by a moment).
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  const waitFor = (predicate: (l: string[]) => boolean): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (predicate(lines)) resolve();
        else if (child.exitCode !== null) reject(new Error(`The app exited (${child.exitCode}) before: ${lines.join(" | ")}`));
        else watchers.push(check);
      };
      check();
    });
  const app = { child, port, lines, exited, waitFor };
  await waitFor((l) => linesStarting(l, "listening").length >= Number(env.WORKERS ?? 2));
  return app;
}

/** The task ids and pids of the `listening` lines, in order. */
const listening = (app: App): Array<{ id: string; pid: string }> =>
  linesStarting(app.lines, "listening").map((l) => {
    const [id, pid] = l.split(" ");
    return { id: id!, pid: pid! };
  });

interface Response {
  status: number;
  body: string;
  close: boolean;
  /** The X-Worker header: "<task id> <pid>". */
  worker: string;
}

/** Why a request failed: the socket's error code, or EOF (closed cleanly), or PROTOCOL; and how many bytes of a response came. */
class RequestFailed extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly responseBytes: number,
  ) {
    super(message);
  }
}

/** One keep-alive client connection on our own HTTP/1.1 client engine. */
class Client {
  readonly #socket: net.Socket;
  readonly #engine = new ClientConnection();
  #waiter: { resolve: (r: Response) => void; reject: (e: RequestFailed) => void } | null = null;
  #response: Response | null = null;
  /** Bytes received since the pending request was sent. */
  #responseBytes = 0;
  /** The socket closed: the engine's error is about the end of input. */
  #eof = false;
  closed = false;
  readonly ready: Promise<void>;
  /** Resolves when the connection closes. */
  readonly closedByPeer: Promise<void>;

  constructor(port: number) {
    this.#socket = net.connect(port, "127.0.0.1");
    this.ready = new Promise((resolve, reject) => {
      this.#socket.once("connect", () => resolve());
      this.#socket.once("error", reject);
    });
    this.#socket.on("data", (chunk) => {
      this.#responseBytes += chunk.byteLength;
      this.#engine.receiveData(chunk);
      this.#drain();
    });
    this.#socket.on("error", (e: NodeJS.ErrnoException) => this.#fail(e.message, e.code ?? "UNKNOWN"));
    this.closedByPeer = new Promise((resolve) => this.#socket.once("close", () => resolve()));
    this.#socket.on("close", () => {
      this.closed = true;
      this.#eof = true;
      this.#engine.receiveEof();
      this.#drain();
      this.#fail("closed before the response was complete", "EOF");
    });
  }

  request(path: string, id: string): Promise<Response> {
    this.#engine.sendRequest({ method: "GET", target: path, headers: ["Host", "127.0.0.1", "X-Request-Id", id] }, "");
    this.#responseBytes = 0;
    this.#socket.write(this.#engine.takeOutput()!);
    return new Promise((resolve, reject) => (this.#waiter = { resolve, reject }));
  }

  destroy(): void {
    this.#socket.destroy();
  }

  #drain(): void {
    for (;;) {
      const ev = this.#engine.nextEvent();
      if (ev.type === "need-data" || ev.type === "paused") return;
      if (ev.type === "response") {
        const worker = ev.headers.findIndex((name, i) => i % 2 === 0 && name.toLowerCase() === "x-worker");
        this.#response = { status: ev.status, body: "", close: !ev.keepAlive, worker: worker === -1 ? "" : ev.headers[worker + 1]! };
      } else if (ev.type === "data") this.#response!.body += Buffer.from(ev.data).toString();
      else if (ev.type === "end") {
        const w = this.#waiter;
        this.#waiter = null;
        w?.resolve(this.#response!);
      } else if (ev.type === "error") this.#fail(ev.error.message, this.#eof ? "EOF" : "PROTOCOL");
    }
  }

  #fail(message: string, code: string): void {
    const w = this.#waiter;
    this.#waiter = null;
    w?.reject(new RequestFailed(message, code, this.#responseBytes));
  }
}

/** One request on a fresh connection. */
async function requestOnce(port: number, path: string, id: string): Promise<Response> {
  const client = new Client(port);
  await client.ready;
  try {
    return await client.request(path, id);
  } finally {
    client.destroy();
  }
}

describe("forkProcesses", () => {
  it("serves one port from two workers, and restarts a crashed worker with its task id", async () => {
    const app = await startApp({ WORK_MS: "0" });
    const before = listening(app);
    expect(before.map((w) => w.id).sort()).toEqual(["0", "1"]);
    expect(new Set(before.map((w) => w.pid)).size).toBe(2);

    await expect(requestOnce(app.port, "/crash", "c")).rejects.toThrow(RequestFailed);
    await app.waitFor((l) => linesStarting(l, "listening").length >= 3);
    const [crashed] = linesStarting(app.lines, "crashing").map((l) => l.split(" "));
    const [crashedId, crashedPid] = crashed!;
    // The worker that crashed is the one with that task id, and its
    // replacement has the same task id in a new process.
    expect(before).toContainEqual({ id: crashedId, pid: crashedPid });
    const restarted = listening(app)[2]!;
    expect(restarted.id).toBe(crashedId);
    expect(restarted.pid).not.toBe(crashedPid);
    expect(app.lines).toContain(`primary warn Worker ${crashedId} (pid ${crashedPid}) died with exit code 3`);

    // Both workers serve: the one that stayed and the new one. The kernel
    // picks the worker for each connection, so connect until both answered.
    const survivor = before.find((w) => w.id !== crashedId)!;
    const expected = [`${survivor.id} ${survivor.pid}`, `${restarted.id} ${restarted.pid}`].sort();
    const seen = new Set<string>();
    for (let i = 0; i < 500 && seen.size < 2; i++) {
      const r = await requestOnce(app.port, "/", `after-crash-${i}`);
      expect(r.status).toBe(200);
      expect(r.body).toBe(`done after-crash-${i}`);
      seen.add(r.worker);
    }
    expect([...seen].sort()).toEqual(expected);

    process.kill(app.child.pid!, "SIGTERM");
    expect(await app.exited).toBe(0);
    expect(linesStarting(app.lines, "exit").sort()).toEqual(["0 0", "1 0", `${crashedId} 3`].sort());
  });

  it("gives up after maxRestarts: the primary stops the other worker and exits with 1", async () => {
    const app = await startApp({ MAX_RESTARTS: "1", WORK_MS: "0" });
    await expect(requestOnce(app.port, "/crash", "c1")).rejects.toThrow(RequestFailed);
    await app.waitFor((l) => linesStarting(l, "listening").length >= 3);
    // The second crash is one too many.
    await expect(requestOnce(app.port, "/crash", "c2")).rejects.toThrow(RequestFailed);
    expect(await app.exited).toBe(1);
    expect(linesStarting(app.lines, "crashing")).toHaveLength(2);
    expect(linesStarting(app.lines, "listening")).toHaveLength(3);
    expect(app.lines).toContain("primary error Too many worker restarts (1); stopping");
    // The worker that had not crashed was stopped gracefully.
    const crashedIds = linesStarting(app.lines, "crashing").map((l) => l.split(" ")[0]);
    const exits = linesStarting(app.lines, "exit");
    expect(exits.filter((l) => l.endsWith(" 3")).map((l) => l.split(" ")[0])).toEqual(crashedIds);
    expect(exits.filter((l) => !l.endsWith(" 3"))).toHaveLength(1);
    expect(exits.filter((l) => !l.endsWith(" 3"))[0]).toMatch(/^[01] 0$/);
  });

  it("exits with 1 when a worker fails to stop cleanly", async () => {
    const app = await startApp({ STOP_FAILS: "1", WORK_MS: "0" });
    process.kill(app.child.pid!, "SIGTERM");
    expect(await app.exited).toBe(1);
    expect(linesStarting(app.lines, "exit").sort()).toEqual(["0 0", "1 2"]);
    const failed = listening(app).find((w) => w.id === "1")!;
    expect(app.lines).toContain(`primary warn Worker 1 (pid ${failed.pid}) exited with exit code 2 while stopping`);
    expect(linesStarting(app.lines, "crashing")).toEqual([]);
  });

  // SIGTERM goes to the primary, which passes it on (a service manager
  // stopping the app); SIGINT goes to the whole process group, as a
  // terminal's Ctrl-C does.
  for (const { signal, group } of [
    { signal: "SIGTERM", group: false },
    { signal: "SIGINT", group: true },
  ] as const) {
    it(`on ${signal}${group ? " to the process group" : ""}, finishes the request in flight, closes WebSockets with 1001 and exits`, async () => {
      const app = await startApp();
      const sockets = await Promise.all([0, 1, 2, 3].map(() => websocketConnect(`ws://127.0.0.1:${app.port}/ws`)));
      const greetings = await Promise.all(sockets.map((ws) => ws.readMessage()));
      for (const greeting of greetings) expect(greeting).toMatch(/^hello [01]$/);
      const slow = new Client(app.port);
      await slow.ready;
      const inFlight = slow.request("/until-signal", "slow");
      await app.waitFor((l) => linesStarting(l, "received").includes("slow"));

      process.kill(group ? -app.child.pid! : app.child.pid!, signal);
      const response = await inFlight;
      expect(response.status).toBe(200);
      expect(response.body).toBe("done slow");
      // The server closes the connection after it (idle, or with Connection: close).
      await slow.closedByPeer;
      for (const ws of sockets) {
        expect(await ws.readMessage()).toBeNull();
        expect(ws.closeCode).toBe(1001);
      }
      expect(await app.exited).toBe(0);
      // Each worker closed its WebSockets with 1001 (the client echoed it) and exited cleanly.
      expect(linesStarting(app.lines, "ws-close").map((l) => l.split(" ")[1])).toEqual(["1001", "1001", "1001", "1001"]);
      expect(linesStarting(app.lines, "exit").sort()).toEqual(["0 0", "1 0"]);
    });
  }

  it("on a second SIGINT to the process group, the primary kills the workers and exits with 1", async () => {
    const app = await startApp();
    const stuck = new Client(app.port);
    await stuck.ready;
    const never = stuck.request("/hang", "stuck").catch((error: unknown) => error);
    await app.waitFor((l) => linesStarting(l, "received").includes("stuck"));
    process.kill(-app.child.pid!, "SIGINT");
    // The worker with nothing in flight stops; the other waits for the stuck request.
    await app.waitFor((l) => l.some((line) => /^primary info Worker [01] \(pid \d+\) exited$/.test(line)));
    expect(app.lines).toContain("primary info Received SIGINT; stopping 2 workers");
    const [stopped] = linesStarting(app.lines, "exit");
    expect(stopped).toMatch(/^[01] 0$/);
    // A second Ctrl-C ends the wait.
    process.kill(-app.child.pid!, "SIGINT");
    expect(await app.exited).toBe(1);
    expect(app.lines).toContain("primary warn Received SIGINT again; killing the workers");
    expect(await never).toBeInstanceOf(RequestFailed);
    // Killed, not exited: the stuck worker wrote no exit line.
    expect(linesStarting(app.lines, "exit")).toEqual([stopped]);
  });

  it("loses no request a worker took in when SIGTERM arrives under load", async () => {
    const app = await startApp({ WORK_MS: "25" });
    type Outcome = "ok" | { bad: string } | { failed: RequestFailed; afterSignal: boolean };
    const outcomes = new Map<string, Outcome>();
    const connectFailures: Array<{ code: string | undefined; afterSignal: boolean }> = [];
    let signalled = false;
    let okAfterSignal = 0;
    let issued = 0;
    const loop = async (n: number): Promise<void> => {
      for (let k = 0; ; ) {
        const client = new Client(app.port);
        try {
          await client.ready;
        } catch (error) {
          // Refused: the listeners are gone, which is the end of the run.
          connectFailures.push({ code: (error as NodeJS.ErrnoException).code, afterSignal: signalled });
          return;
        }
        while (!client.closed) {
          const id = `${n}-${k++}`;
          issued++;
          try {
            const res = await client.request("/", id);
            outcomes.set(id, res.status === 200 && res.body === `done ${id}` ? "ok" : { bad: `${res.status} ${res.body}` });
            if (signalled) okAfterSignal++;
            if (res.close) break;
          } catch (error) {
            outcomes.set(id, { failed: error as RequestFailed, afterSignal: signalled });
            break;
          }
        }
        client.destroy();
      }
    };
    const loops = Array.from({ length: 16 }, (_, i) => loop(i));
    await app.waitFor((l) => linesStarting(l, "received").length >= 300);
    signalled = true;
    process.kill(app.child.pid!, "SIGTERM");
    await Promise.all(loops);
    expect(await app.exited).toBe(0);
    expect(linesStarting(app.lines, "exit").sort()).toEqual(["0 0", "1 0"]);

    // Every request has an outcome, and every failure is one that HTTP
    // allows at a shutdown: the connection was refused, or closed or reset
    // by the server before it took in any byte of the request (so that the
    // client may retry it), after the signal, with no byte of a response.
    expect(outcomes.size).toBe(issued);
    // A connection refused, or reset before it was accepted, carried no request.
    for (const failure of connectFailures) {
      expect(failure.afterSignal).toBe(true);
      expect(["ECONNREFUSED", "ECONNRESET"]).toContain(failure.code);
    }
    const read = new Set(linesStarting(app.lines, "read"));
    expect(linesStarting(app.lines, "read-partial")).toEqual([]);
    const unexpected: string[] = [];
    for (const [id, outcome] of outcomes) {
      if (outcome === "ok") continue;
      if ("bad" in outcome) unexpected.push(`${id}: answered ${outcome.bad}`);
      else if (!outcome.afterSignal) unexpected.push(`${id}: failed before the signal (${outcome.failed.code})`);
      else if (!["ECONNRESET", "EPIPE", "EOF"].includes(outcome.failed.code)) unexpected.push(`${id}: failed with ${outcome.failed.code}: ${outcome.failed.message}`);
      else if (outcome.failed.responseBytes > 0) unexpected.push(`${id}: ${outcome.failed.code} after ${outcome.failed.responseBytes} bytes of the response`);
      else if (read.has(id)) unexpected.push(`${id}: ${outcome.failed.code}, but a worker had taken the request in`);
    }
    expect(unexpected).toEqual([]);
    // And every request a worker took in, or handled, was answered in full.
    const received = linesStarting(app.lines, "received");
    expect(received.length).toBeGreaterThanOrEqual(300);
    for (const id of received) expect(read.has(id)).toBe(true);
    expect([...read].filter((id) => outcomes.get(id) !== "ok")).toEqual([]);
    // The signal really came in the middle of the load.
    expect(okAfterSignal).toBeGreaterThan(0);
  });
});
