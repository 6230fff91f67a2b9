/**
 * A test client that talks HTTP/1.1 to a server over in-memory pipes: no
 * port, no socket, deterministic, and with the memory transport's faults
 * (split writes, latency on a virtual clock) at hand. Tornado's
 * `AsyncHTTPTestCase.fetch`, and Hono's `app.request()`.
 *
 * @module
 */
import { toBytes, concatBytes, utf8Decode, type BytesLike } from "../core/bytes";
import { HTTPHeaders, flattenHeaders, type HeadersInit } from "../core/headers";
import type { Connection, ConnectionHandler } from "../core/transport";
import { ClientConnection } from "../protocols/http1/client-connection";
import { HTTPServer, type HTTPServerConnectionDelegate, type HTTPServerOptions, type RequestCallback } from "../server/http-server";
import { createPipe, type MemoryPipeOptions } from "../transports/memory";

/** What a request through {@link TestClient.fetch} may carry. */
export interface TestRequestInit {
  /** @default "GET" */
  method?: string;
  headers?: HeadersInit;
  /** The whole body (Content-Length is set); a plain object is sent as JSON. */
  body?: BytesLike | Record<string, unknown>;
}

/** A response read by {@link TestClient.fetch}. */
export class TestResponse {
  constructor(
    readonly status: number,
    readonly reason: string,
    readonly headers: HTTPHeaders,
    readonly body: Uint8Array,
    readonly trailers: HTTPHeaders,
  ) {}

  /** The body decoded as UTF-8. */
  text(): string {
    return utf8Decode(this.body);
  }

  /** The body parsed as JSON. */
  json<T = unknown>(): T {
    return JSON.parse(this.text()) as T;
  }
}

/** Options of {@link TestClient}. */
export interface TestClientOptions {
  /** Options of the in-memory pipes (clock, latency, split faults). */
  pipe?: MemoryPipeOptions;
  /** Options of the server made for a callback or delegate (ignored when a server is given). */
  server?: HTTPServerOptions;
  /** The `Host` header sent when a request has none. @default "127.0.0.1" */
  host?: string;
}

interface Waiter {
  resolve(response: TestResponse): void;
  reject(error: Error): void;
}

/**
 * Sends requests to a server over a memory pipe, on one keep-alive
 * connection (a new one is opened when the server closes it).
 *
 * @example
 * ```ts
 * const client = new TestClient(app); // an Application, an HTTPServer, or a callback
 * const res = await client.fetch("/");
 * expect(res.status).toBe(200);
 * expect(res.text()).toBe("Hello, world");
 * client.close();
 * ```
 */
export class TestClient {
  readonly server: HTTPServer;
  readonly #pipeOptions: MemoryPipeOptions;
  readonly #host: string;
  #conn: Connection | null = null;
  #engine: ClientConnection | null = null;
  #waiters = new Map<number, Waiter>();
  #parts = new Map<number, { status: number; reason: string; headers: HTTPHeaders; chunks: Uint8Array[] }>();

  constructor(target: HTTPServer | HTTPServerConnectionDelegate | RequestCallback, options: TestClientOptions = {}) {
    this.server = target instanceof HTTPServer ? target : new HTTPServer(target, options.server);
    this.#pipeOptions = options.pipe ?? {};
    this.#host = options.host ?? "127.0.0.1";
  }

  /**
   * Sends one request and resolves with the whole response.
   *
   * @example
   * ```ts
   * const res = await client.fetch("/echo", { method: "POST", body: "hi" });
   * ```
   */
  fetch(path: string, init: TestRequestInit = {}): Promise<TestResponse> {
    const engine = this.#ensureConnection();
    const headers = [...flattenHeaders(init.headers)];
    if (!headers.some((h, i) => i % 2 === 0 && h.toLowerCase() === "host")) headers.push("Host", this.#host);
    let body: BytesLike | undefined;
    if (init.body !== undefined && !(init.body instanceof Uint8Array) && typeof init.body !== "string") {
      body = JSON.stringify(init.body);
      if (!headers.some((h, i) => i % 2 === 0 && h.toLowerCase() === "content-type")) headers.push("Content-Type", "application/json");
    } else {
      body = init.body;
    }
    const method = (init.method ?? "GET").toUpperCase();
    const id = engine.sendRequest({ method, target: path, headers }, body ?? (method === "GET" || method === "HEAD" ? "" : toBytes("")));
    const promise = new Promise<TestResponse>((resolve, reject) => this.#waiters.set(id, { resolve, reject }));
    this.#flush();
    return promise;
  }

  /** Closes the client's connection. */
  close(): void {
    this.#conn?.end();
    this.#conn = null;
    this.#engine?.destroy();
    this.#engine = null;
  }

  #ensureConnection(): ClientConnection {
    if (this.#engine !== null && this.#conn !== null && !this.#engine.mustClose) return this.#engine;
    const [clientEnd, serverEnd] = createPipe(this.#pipeOptions);
    const engine = new ClientConnection();
    this.#conn = clientEnd;
    this.#engine = engine;
    const handler: ConnectionHandler = {
      data: (chunk) => {
        engine.receiveData(chunk);
        this.#drain(engine);
      },
      end: () => {
        engine.receiveEof();
        this.#drain(engine);
      },
      drain: () => {},
      close: (error) => {
        engine.receiveEof();
        this.#drain(engine);
        this.#failAll(error ?? new Error("Cannot read the response: the connection closed"), engine);
      },
    };
    clientEnd.setHandler(handler);
    this.server.handleConnection(serverEnd);
    return engine;
  }

  #flush(): void {
    const out = this.#engine?.takeOutput();
    if (out != null) this.#conn?.write(out);
  }

  #drain(engine: ClientConnection): void {
    for (;;) {
      const ev = engine.nextEvent();
      if (ev.type === "need-data" || ev.type === "paused") return;
      switch (ev.type) {
        case "response":
          this.#parts.set(ev.id, { status: ev.status, reason: ev.reason, headers: HTTPHeaders.fromFlat(ev.headers), chunks: [] });
          break;
        case "data":
          this.#parts.get(ev.id)?.chunks.push(ev.data);
          break;
        case "end": {
          const part = this.#parts.get(ev.id);
          const waiter = this.#waiters.get(ev.id);
          this.#parts.delete(ev.id);
          this.#waiters.delete(ev.id);
          if (part !== undefined && waiter !== undefined) {
            waiter.resolve(new TestResponse(part.status, part.reason, part.headers, concatBytes(part.chunks), HTTPHeaders.fromFlat(ev.trailers)));
          }
          break;
        }
        case "error":
          this.#failAll(ev.error, engine);
          break;
        case "informational":
        case "upgrade":
          break;
      }
    }
  }

  #failAll(error: Error, engine: ClientConnection): void {
    if (engine !== this.#engine && this.#waiters.size === 0) return;
    for (const waiter of this.#waiters.values()) waiter.reject(error);
    this.#waiters.clear();
    this.#parts.clear();
    if (engine === this.#engine) {
      this.#engine = null;
      this.#conn = null;
    }
  }
}
