/**
 * Helpers of the web tests: an application served over memory pipes, a raw
 * HTTP/1.1 client (requests written by hand, responses parsed here rather
 * than by the engine) and a logger that records.
 */
import { Buffer } from "node:buffer";
import { HTTPHeaders } from "../../src/core/headers";
import type { Logger } from "../../src/core/log";
import { HTTPServer, type HTTPServerOptions } from "../../src/server";
import { createPipe } from "../../src/transports/memory";
import { Application, type ApplicationSettings, type Route } from "../../src/web";

/** One parsed response. */
export interface RawResponse {
  status: number;
  reason: string;
  headers: HTTPHeaders;
  /** Header names in the order sent, as sent. */
  headerNames: string[];
  body: Buffer;
  text: string;
  /** True if the body was chunked. */
  chunked: boolean;
  /** True if the chunked body ended with its last chunk (false: cut short). */
  complete: boolean;
}

/** A logger that keeps every line. */
export class RecordingLogger implements Logger {
  readonly lines: Array<{ level: string; message: string; details: unknown[] }> = [];
  debug(message: string, ...details: unknown[]): void {
    this.lines.push({ level: "debug", message, details });
  }
  info(message: string, ...details: unknown[]): void {
    this.lines.push({ level: "info", message, details });
  }
  warn(message: string, ...details: unknown[]): void {
    this.lines.push({ level: "warn", message, details });
  }
  error(message: string, ...details: unknown[]): void {
    this.lines.push({ level: "error", message, details });
  }
  messages(level?: string): string[] {
    return this.lines.filter((l) => level === undefined || l.level === level).map((l) => l.message);
  }
}

/** Options of {@link request}. */
export interface RequestOptions {
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  /** HTTP/1.0 instead of 1.1. */
  http10?: boolean;
}

/** A request as bytes, with `Host` and (for a body) `Content-Length`. */
export function request(method: string, target: string, options: RequestOptions = {}): Buffer {
  const body = options.body === undefined ? undefined : Buffer.from(options.body);
  let head = `${method} ${target} HTTP/${options.http10 ? "1.0" : "1.1"}\r\nHost: test\r\n`;
  for (const [name, value] of Object.entries(options.headers ?? {})) head += `${name}: ${value}\r\n`;
  if (body !== undefined) head += `Content-Length: ${body.byteLength}\r\n`;
  head += "\r\n";
  return body === undefined ? Buffer.from(head, "latin1") : Buffer.concat([Buffer.from(head, "latin1"), body]);
}

/**
 * Writes `data` on a new memory pipe to the server, half-closes, and
 * resolves with every byte the server sent until it closed.
 */
export function rawExchange(server: HTTPServer, data: Uint8Array | readonly Uint8Array[]): Promise<Buffer> {
  const [client, serverEnd] = createPipe();
  server.handleConnection(serverEnd);
  const chunks: Buffer[] = [];
  return new Promise((resolve) => {
    client.setHandler({
      data: (chunk) => chunks.push(Buffer.from(chunk)),
      end: () => client.end(),
      drain: () => {},
      close: () => resolve(Buffer.concat(chunks)),
    });
    for (const piece of Array.isArray(data) ? (data as readonly Uint8Array[]) : [data as Uint8Array]) client.write(piece);
    client.end();
  });
}

/**
 * Parses the responses in `data`, one per method in `methods` (a HEAD
 * response has no body). Throws if the bytes are not that many responses.
 */
export function parseResponses(data: Buffer, methods: readonly string[]): RawResponse[] {
  const out: RawResponse[] = [];
  let pos = 0;
  for (const method of methods) {
    const headEnd = data.indexOf("\r\n\r\n", pos, "latin1");
    if (headEnd === -1) throw new Error(`Cannot parse response ${out.length + 1}: no complete head in ${JSON.stringify(data.subarray(pos).toString("latin1"))}`);
    const lines = data.subarray(pos, headEnd).toString("latin1").split("\r\n");
    pos = headEnd + 4;
    const m = /^HTTP\/1\.[01] (\d{3}) (.*)$/.exec(lines[0]!);
    if (m === null) throw new Error(`Cannot parse the status line ${JSON.stringify(lines[0])}`);
    const status = Number(m[1]);
    const flat: string[] = [];
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      flat.push(line.slice(0, colon), line.slice(colon + 1).trim());
    }
    const headers = new HTTPHeaders(flat);
    let body = Buffer.alloc(0);
    let chunked = false;
    let complete = true;
    const noBody = method === "HEAD" || status === 204 || status === 304 || status < 200;
    if (!noBody) {
      const length = headers.get("Content-Length");
      if (headers.get("Transfer-Encoding")?.toLowerCase() === "chunked") {
        chunked = true;
        complete = false;
        const parts: Buffer[] = [];
        for (;;) {
          const lineEnd = data.indexOf("\r\n", pos, "latin1");
          if (lineEnd === -1) break;
          const size = parseInt(data.subarray(pos, lineEnd).toString("latin1"), 16);
          pos = lineEnd + 2;
          if (size === 0) {
            const trailerEnd = data.indexOf("\r\n", pos, "latin1");
            pos = trailerEnd + 2;
            complete = true;
            break;
          }
          if (pos + size + 2 > data.byteLength) {
            parts.push(data.subarray(pos));
            pos = data.byteLength;
            break;
          }
          parts.push(data.subarray(pos, pos + size));
          pos += size + 2;
        }
        body = Buffer.concat(parts);
      } else if (length !== undefined) {
        const n = Number(length);
        if (pos + n > data.byteLength) throw new Error(`Cannot parse a body of ${n} bytes: only ${data.byteLength - pos} arrived`);
        body = Buffer.from(data.subarray(pos, pos + n));
        pos += n;
      } else {
        body = Buffer.from(data.subarray(pos));
        pos = data.byteLength;
      }
    }
    out.push({
      status,
      reason: m[2]!,
      headers,
      headerNames: flat.filter((_, i) => i % 2 === 0),
      body,
      text: body.toString("utf8"),
      chunked,
      complete,
    });
  }
  if (pos !== data.byteLength) {
    throw new Error(`Cannot parse: ${data.byteLength - pos} bytes follow the expected responses: ${JSON.stringify(data.subarray(pos, pos + 200).toString("latin1"))}`);
  }
  return out;
}

/** An application served over memory pipes, and a client for it. */
export interface TestServer {
  app: Application;
  server: HTTPServer;
  logger: RecordingLogger;
  /** Sends one request on its own connection and parses the answer. */
  fetch(method: string, target: string, options?: RequestOptions): Promise<RawResponse>;
  /** Sends several requests pipelined on one connection. */
  pipeline(requests: ReadonlyArray<[method: string, target: string, options?: RequestOptions]>): Promise<RawResponse[]>;
}

/** Builds an application (with a recording logger) and a server over memory pipes. */
export function serve(routes: readonly Route[], settings: ApplicationSettings = {}, serverOptions: HTTPServerOptions = {}): TestServer {
  const logger = new RecordingLogger();
  const app = new Application(routes, { logger, ...settings });
  return serveApp(app, logger, serverOptions);
}

/** A server over memory pipes for an existing application. */
export function serveApp(app: Application, logger = new RecordingLogger(), serverOptions: HTTPServerOptions = {}): TestServer {
  const server = new HTTPServer(app, { logger, ...serverOptions });
  return {
    app,
    server,
    logger,
    async fetch(method, target, options) {
      const data = await rawExchange(server, request(method, target, options));
      return parseResponses(data, [method])[0]!;
    },
    async pipeline(requests) {
      const data = await rawExchange(server, requests.map(([m, t, o]) => request(m, t, o)));
      return parseResponses(data, requests.map(([m]) => m));
    },
  };
}

/** A promise and its resolver, for handlers that wait on the test. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
