/**
 * forkProcesses and graceful shutdown with real processes: two workers share
 * a port; a crashed worker is restarted; SIGTERM under load loses no request
 * that a worker had received.
 */
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
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
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
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

async function startApp(env: Record<string, string> = {}): Promise<App> {
  const port = await freePort();
  const child = spawn(process.execPath, ["--import", "tsx", fixture], {
    env: { ...process.env, PORT: String(port), ...env },
    stdio: ["ignore", "pipe", "inherit"],
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
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
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
  await waitFor((l) => l.filter((x) => x.startsWith("listening")).length >= Number(env.WORKERS ?? 2));
  return app;
}

/** One keep-alive client connection on our own HTTP/1.1 client engine. */
class Client {
  readonly #socket: net.Socket;
  readonly #engine = new ClientConnection();
  #waiter: { resolve: (r: { status: number; body: string; close: boolean }) => void; reject: (e: Error) => void } | null = null;
  #body = "";
  #status = 0;
  #close = false;
  closed = false;
  readonly ready: Promise<void>;

  constructor(port: number) {
    this.#socket = net.connect(port, "127.0.0.1");
    this.ready = new Promise((resolve, reject) => {
      this.#socket.once("connect", () => resolve());
      this.#socket.once("error", reject);
    });
    this.#socket.on("data", (chunk) => {
      this.#engine.receiveData(chunk);
      this.#drain();
    });
    this.#socket.on("error", (e) => this.#fail(e));
    this.#socket.on("close", () => {
      this.closed = true;
      this.#engine.receiveEof();
      this.#drain();
      this.#fail(new Error("closed before the response was complete"));
    });
  }

  request(path: string, id: string): Promise<{ status: number; body: string; close: boolean }> {
    this.#engine.sendRequest({ method: "GET", target: path, headers: ["Host", "127.0.0.1", "X-Request-Id", id] }, "");
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
        this.#status = ev.status;
        this.#body = "";
        this.#close = !ev.keepAlive;
      } else if (ev.type === "data") this.#body += Buffer.from(ev.data).toString();
      else if (ev.type === "end") {
        const w = this.#waiter;
        this.#waiter = null;
        w?.resolve({ status: this.#status, body: this.#body, close: this.#close });
      } else if (ev.type === "error") this.#fail(ev.error);
    }
  }

  #fail(error: Error): void {
    const w = this.#waiter;
    this.#waiter = null;
    w?.reject(error);
  }
}

describe("forkProcesses", () => {
  it("serves one port from two workers and restarts a worker that crashes", async () => {
    const app = await startApp();
    const pids = new Set(app.lines.filter((l) => l.startsWith("listening")).map((l) => l.split(" ")[2]));
    expect(pids.size).toBe(2);
    const crasher = new Client(app.port);
    await crasher.ready;
    await expect(crasher.request("/crash", "c")).rejects.toThrow();
    await app.waitFor((l) => l.filter((x) => x.startsWith("listening")).length >= 3);
    const c = new Client(app.port);
    await c.ready;
    const r = await c.request("/", "after-crash");
    expect(r.status).toBe(200);
    expect(r.body).toBe("done after-crash");
    c.destroy();
    app.child.kill("SIGTERM");
    expect(await app.exited).toBe(0);
  });

  it("loses no request a worker received when SIGTERM arrives under load", async () => {
    const app = await startApp({ WORK_MS: "25" });
    const outcome = new Map<string, "ok" | "failed">();
    let signalled = false;
    let okAfterSignal = 0;
    let next = 0;
    const loop = async (n: number): Promise<void> => {
      while (true) {
        const client = new Client(app.port);
        try {
          await client.ready;
        } catch {
          return; // refused: the listener is gone, which is the end of the run
        }
        while (!client.closed) {
          const id = `${n}-${next++}`;
          try {
            const res = await client.request("/", id);
            outcome.set(id, res.status === 200 && res.body === `done ${id}` ? "ok" : "failed");
            if (signalled) okAfterSignal++;
            if (res.close) break;
          } catch {
            outcome.set(id, "failed");
            break;
          }
        }
        client.destroy();
      }
    };
    const loops = Array.from({ length: 16 }, (_, i) => loop(i));
    await app.waitFor((l) => l.filter((x) => x.startsWith("received")).length >= 300);
    signalled = true;
    app.child.kill("SIGTERM");
    await Promise.all(loops);
    expect(await app.exited).toBe(0);
    const received = app.lines.filter((l) => l.startsWith("received ")).map((l) => l.slice("received ".length));
    expect(received.length).toBeGreaterThanOrEqual(300);
    const lost = received.filter((id) => outcome.get(id) !== "ok");
    expect(lost).toEqual([]);
    // The signal really came in the middle of the load.
    expect(okAfterSignal).toBeGreaterThan(0);
  });
});
