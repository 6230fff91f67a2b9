/**
 * Checks, before measuring, that a server answers what every server must:
 * `200`, `Content-Type: text/plain`, body `Hello, world`, the connection kept
 * open, and two pipelined requests answered in order on one connection.
 *
 * @module
 */
import * as net from "node:net";

/** One parsed response. */
export interface ParsedResponse {
  status: number;
  /** The head as sent (status line and header lines, without the blank line). */
  head: string;
  headers: Array<[string, string]>;
  body: string;
  /** Bytes of the whole response. */
  size: number;
}

/** What the check saw; `problems` is empty when the server is fine. */
export interface CheckResult {
  responses: ParsedResponse[];
  problems: string[];
}

const EXPECTED_BODY = "Hello, world";

/** Sends `count` pipelined `GET path` requests on one connection and parses `count` responses. */
function exchange(host: string, port: number, path: string, count: number, timeoutMs = 5000): Promise<ParsedResponse[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let data = Buffer.alloc(0);
    const out: ParsedResponse[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer within ${timeoutMs} ms (got ${out.length} of ${count} responses, ${data.length} bytes pending)`));
    }, timeoutMs);
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(out);
    };
    socket.once("connect", () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUser-Agent: typhoon-bench\r\n\r\n`.repeat(count));
    });
    socket.on("data", (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      for (;;) {
        const end = data.indexOf("\r\n\r\n");
        if (end === -1) return;
        const head = data.subarray(0, end).toString("latin1");
        const lines = head.split("\r\n");
        const status = Number(lines[0]!.split(" ")[1]);
        const headers = lines.slice(1).map((l): [string, string] => {
          const colon = l.indexOf(":");
          return [l.slice(0, colon), l.slice(colon + 1).trim()];
        });
        const cl = headers.find(([n]) => n.toLowerCase() === "content-length");
        if (cl === undefined) {
          finish(new Error(`a response has no Content-Length:\n${head}`));
          return;
        }
        const length = Number(cl[1]);
        if (data.length < end + 4 + length) return;
        out.push({ status, head, headers, body: data.subarray(end + 4, end + 4 + length).toString("utf8"), size: end + 4 + length });
        data = data.subarray(end + 4 + length);
        if (out.length === count) {
          finish();
          return;
        }
      }
    });
    socket.once("error", (error) => finish(error));
    socket.once("end", () => finish(new Error(`the server closed the connection after ${out.length} of ${count} responses`)));
  });
}

export async function checkServer(host: string, port: number, path: string): Promise<CheckResult> {
  const problems: string[] = [];
  let responses: ParsedResponse[] = [];
  try {
    responses = await exchange(host, port, path, 2);
  } catch (error) {
    return { responses, problems: [(error as Error).message] };
  }
  responses.forEach((r, i) => {
    const which = i === 0 ? "first response" : "second (pipelined) response";
    const get = (name: string): string | undefined => r.headers.find(([n]) => n.toLowerCase() === name)?.[1];
    if (r.status !== 200) problems.push(`${which}: status ${r.status}, expected 200`);
    if (r.body !== EXPECTED_BODY) problems.push(`${which}: body ${JSON.stringify(r.body)}, expected ${JSON.stringify(EXPECTED_BODY)}`);
    const type = get("content-type");
    if (type === undefined || !/^text\/plain\b/i.test(type)) problems.push(`${which}: Content-Type ${JSON.stringify(type)}, expected text/plain`);
    if (/\bclose\b/i.test(get("connection") ?? "")) problems.push(`${which}: Connection: close (keep-alive expected)`);
  });
  return { responses, problems };
}
