/**
 * The engine alone: requests per second through the sans-I/O
 * `ServerConnection`, no sockets, no driver. Each iteration feeds a
 * browser-like GET (10 header lines), drains the events, answers each request
 * with `writeResponse` (the same head and body the bare server sends) and
 * takes the output, as the HTTPServer driver does per read:
 *
 * - `1 per receiveData`: one request per chunk, one response out;
 * - `16 pipelined`: 16 requests in one chunk, 16 responses joined in one output;
 * - `llhttp only`: the same chunk through typhoon's llhttp adapter with
 *   callbacks that do nothing: what parsing costs, the floor for the rest.
 *
 * Run it alone with `tsx bench/engine.ts` (add `--json` for the machine
 * form); `npm run bench` runs it pinned to the server CPU.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import process from "node:process";
import { ServerConnection } from "../src/protocols/http1/server-connection";
import { CB_OK, LlhttpParser, llhttpUsesSimd, type LlhttpHandler } from "../src/protocols/http1/llhttp";
import { fmtInt, median } from "./lib/format";

/** What Firefox sends for a page (cookie shortened). */
export const BROWSER_REQUEST =
  "GET /index.html?lang=en HTTP/1.1\r\n" +
  "Host: localhost:8888\r\n" +
  "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
  "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
  "Accept-Language: en-US,en;q=0.5\r\n" +
  "Accept-Encoding: gzip, deflate, br, zstd\r\n" +
  "Connection: keep-alive\r\n" +
  "Cookie: session=5f2b8c1e9a7d4e3f; theme=dark\r\n" +
  "Upgrade-Insecure-Requests: 1\r\n" +
  "Sec-Fetch-Dest: document\r\n" +
  "Sec-Fetch-Mode: navigate\r\n" +
  "\r\n";

const RESPONSE_HEADERS = ["Content-Type", "text/plain"];
const BODY = "Hello, world";

export interface EngineCase {
  id: string;
  name: string;
  /** Requests per call of `run`. */
  perCall: number;
  /** Makes the state and returns one iteration. */
  setup(): () => void;
}

function engineCase(id: string, name: string, depth: number): EngineCase {
  return {
    id,
    name,
    perCall: depth,
    setup() {
      const chunk = Buffer.from(BROWSER_REQUEST.repeat(depth), "latin1");
      const conn = new ServerConnection();
      let answered = 0;
      return () => {
        conn.receiveData(chunk);
        for (;;) {
          const ev = conn.nextEvent();
          if (ev.type === "need-data" || ev.type === "paused") break;
          if (ev.type === "request") {
            conn.writeResponse(ev.id, { status: 200, headers: RESPONSE_HEADERS }, BODY);
            answered++;
          } else if (ev.type === "error") {
            throw new Error(`The engine rejected the request: ${ev.error.message}`);
          }
        }
        const out = conn.takeOutput();
        if (out === null) throw new Error("The engine produced no output");
        if (answered % depth !== 0) throw new Error("The engine did not answer every request of the chunk");
      };
    },
  };
}

function llhttpCase(id: string, name: string, depth: number): EngineCase {
  return {
    id,
    name,
    perCall: depth,
    setup() {
      const chunk = Buffer.from(BROWSER_REQUEST.repeat(depth), "latin1");
      let messages = 0;
      const ok = (): number => CB_OK;
      const handler: LlhttpHandler = {
        onMessageBegin: ok,
        onUrl: ok,
        onStatus: ok,
        onHeaderField: ok,
        onHeaderValue: ok,
        onHeadersComplete: ok,
        onBody: ok,
        onMessageComplete: () => {
          messages++;
          return CB_OK;
        },
      };
      const parser = new LlhttpParser("request", handler);
      return () => {
        const before = messages;
        if (parser.execute(chunk) !== 0 || messages - before !== depth) throw new Error("llhttp did not parse the requests");
      };
    },
  };
}

export const ENGINE_CASES: EngineCase[] = [
  engineCase("engine-1", "ServerConnection, 1 request per receiveData", 1),
  engineCase("engine-16", "ServerConnection, 16 pipelined per receiveData", 16),
  llhttpCase("llhttp-1", "llhttp only (no-op callbacks), 1 per execute", 1),
  llhttpCase("llhttp-16", "llhttp only (no-op callbacks), 16 per execute", 16),
];

export interface EngineResult {
  id: string;
  name: string;
  /** Requests per second, median of the rounds. */
  rps: number;
  rounds: number[];
  /** Nanoseconds per request at the median. */
  nsPerRequest: number;
}

/** Runs `fn` in batches until `seconds` have passed; returns calls per second. */
function measure(fn: () => void, seconds: number): number {
  let calls = 0;
  let batch = 256;
  const start = process.hrtime.bigint();
  const limit = BigInt(Math.round(seconds * 1e9));
  let elapsed = 0n;
  while (elapsed < limit) {
    for (let i = 0; i < batch; i++) fn();
    calls += batch;
    elapsed = process.hrtime.bigint() - start;
    if (elapsed < limit / 20n) batch *= 2;
  }
  return calls / (Number(elapsed) / 1e9);
}

export function runEngineBench(seconds: number, rounds = 3, cases = ENGINE_CASES): EngineResult[] {
  const results: EngineResult[] = [];
  const runs = cases.map((c) => ({ c, fn: c.setup(), rounds: [] as number[] }));
  for (const r of runs) measure(r.fn, Math.min(1, seconds / 2)); // warm-up
  for (let round = 0; round < rounds; round++) {
    for (const r of runs) r.rounds.push(measure(r.fn, seconds) * r.c.perCall);
  }
  for (const r of runs) {
    const rps = median(r.rounds);
    results.push({ id: r.c.id, name: r.c.name, rps, rounds: r.rounds, nsPerRequest: 1e9 / rps });
  }
  return results;
}

export function engineTable(results: EngineResult[]): string {
  const lines = ["| case | requests/s (median) | ns/request | best round | rounds |", "|---|---:|---:|---:|---|"];
  for (const r of results) {
    lines.push(`| ${r.name} | ${fmtInt(r.rps)} | ${r.nsPerRequest.toFixed(0)} | ${fmtInt(Math.max(...r.rounds))} | ${r.rounds.map(fmtInt).join(" / ")} |`);
  }
  return lines.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith("bench/engine.ts")) {
  const seconds = Number(process.env.BENCH_ENGINE_DURATION ?? 2);
  const results = runEngineBench(seconds);
  if (process.argv.includes("--json")) {
    process.stdout.write(`BENCH_JSON ${JSON.stringify({ simd: llhttpUsesSimd(), node: process.version, results })}\n`);
  } else {
    console.log(`llhttp ${llhttpUsesSimd() ? "SIMD" : "plain"} wasm, Node ${process.version}, ${seconds} s per round\n`);
    console.log(engineTable(results));
  }
}
