/**
 * Autobahn|Testsuite against typhoon's WebSocket client: a runner for the
 * suite's `fuzzingserver` mode, after the suite's own reference clients.
 * It asks the fuzzingserver how many cases there are
 * (`/getCaseCount`), connects once per case (`/runCase?case=N&agent=...`)
 * and echoes every message it reads until the server closes, then asks for
 * the reports (`/updateReports?agent=...`). Each case's connection offers
 * permessage-deflate (cases 12 and 13 accept it) and accepts messages up to
 * 64 MiB (the largest, in section 9, have 16 MiB).
 *
 * Run the fuzzingserver (see docs/websocket.md for the spec file), then:
 *
 * ```sh
 * npx tsx examples/autobahn-client.ts                     # ws://127.0.0.1:9001, agent "typhoon"
 * npx tsx examples/autobahn-client.ts ws://127.0.0.1:9001 my-agent
 * bun examples/autobahn-client.ts                         # the same client on Bun
 * ```
 *
 * The verdicts are in the fuzzingserver's report directory
 * (`reports/clients/index.html`).
 */
import { pathToFileURL } from "node:url";
import { websocketConnect, WebSocketClosedError, type WebSocketClientConnection, type WebSocketConnectOptions } from "typhoon";

/** Largest message the runner accepts: 64 MiB, as the demo's `/ws/echo`. */
export const AUTOBAHN_MAX_MESSAGE_SIZE = 64 * 1024 * 1024;

/** Options of {@link runAutobahnClient}. Every field is optional. */
export interface AutobahnClientOptions {
  /** The fuzzingserver. @default "ws://127.0.0.1:9001" */
  url?: string;
  /** The name the reports list the client under. @default "typhoon" */
  agent?: string;
  /** Options for every connection (a `transport`, `tls`, `logger`...); the runner's own settings win. */
  connect?: WebSocketConnectOptions;
  /** Where progress goes. @default console.log */
  log?: (line: string) => void;
}

/** What a run did. */
export interface AutobahnClientResult {
  /** The number of cases the fuzzingserver reported. */
  readonly cases: number;
  /** Cases whose connection could not be opened (the suite judges the rest). */
  readonly notOpened: readonly number[];
}

/** The options of a case's connection: compression offered, 64 MiB messages. */
export function caseOptions(connect: WebSocketConnectOptions = {}): WebSocketConnectOptions {
  return {
    ...connect,
    // Offer permessage-deflate with its defaults, and compress every message (as
    // the suite's own clients do), so that cases 12 and 13 see compressed echoes.
    compression: { threshold: 0 },
    maxMessageSize: AUTOBAHN_MAX_MESSAGE_SIZE,
  };
}

/**
 * Echoes every message (text as text, binary as binary) until the server
 * closes; resolves once the connection is closed.
 *
 * @example
 * ```ts
 * await echoLoop(await websocketConnect("ws://127.0.0.1:9001/runCase?case=1&agent=typhoon", caseOptions()));
 * ```
 */
export async function echoLoop(ws: WebSocketClientConnection): Promise<void> {
  for await (const message of ws) {
    try {
      // Awaiting the send paces reading by the server's reading.
      await ws.writeMessage(message);
    } catch (error) {
      // The server closed (or failed the connection) while we echoed: read on to the end.
      if (!(error instanceof WebSocketClosedError)) throw error;
    }
  }
  await ws.closed;
}

function endpoint(base: string, path: string, query: Record<string, string> = {}): string {
  const url = new URL(path, base.endsWith("/") ? base : `${base}/`);
  for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
  return url.href;
}

/**
 * Asks the fuzzingserver for its number of cases.
 *
 * @example
 * ```ts
 * const count = await getCaseCount("ws://127.0.0.1:9001");
 * ```
 */
export async function getCaseCount(url: string, connect: WebSocketConnectOptions = {}): Promise<number> {
  const ws = await websocketConnect(endpoint(url, "getCaseCount"), connect);
  const message = await ws.readMessage();
  await ws.closed;
  const count = typeof message === "string" ? Number(message) : NaN;
  if (!Number.isSafeInteger(count) || count < 0) throw new Error(`Cannot read the case count: the fuzzingserver sent ${JSON.stringify(message)}`);
  return count;
}

/**
 * Runs case `n` (1-based): connects and echoes until the server closes.
 *
 * @example
 * ```ts
 * await runCase("ws://127.0.0.1:9001", 1, "typhoon");
 * ```
 */
export async function runCase(url: string, n: number, agent: string, connect: WebSocketConnectOptions = {}): Promise<void> {
  const ws = await websocketConnect(endpoint(url, "runCase", { case: String(n), agent }), caseOptions(connect));
  await echoLoop(ws);
}

/**
 * Asks the fuzzingserver to write the reports for `agent`.
 *
 * @example
 * ```ts
 * await updateReports("ws://127.0.0.1:9001", "typhoon");
 * ```
 */
export async function updateReports(url: string, agent: string, connect: WebSocketConnectOptions = {}): Promise<void> {
  const ws = await websocketConnect(endpoint(url, "updateReports", { agent }), connect);
  await echoLoop(ws);
}

/**
 * Runs every case of the fuzzingserver, one after the other, then updates
 * the reports.
 *
 * @example
 * ```ts
 * const { cases } = await runAutobahnClient({ url: "ws://127.0.0.1:9001", agent: "typhoon" });
 * ```
 */
export async function runAutobahnClient(options: AutobahnClientOptions = {}): Promise<AutobahnClientResult> {
  const url = options.url ?? "ws://127.0.0.1:9001";
  const agent = options.agent ?? "typhoon";
  const connect = options.connect ?? {};
  const log = options.log ?? ((line: string) => console.log(line));
  const cases = await getCaseCount(url, connect);
  log(`${cases} cases on ${url}, agent ${agent}`);
  const notOpened: number[] = [];
  for (let n = 1; n <= cases; n++) {
    try {
      await runCase(url, n, agent, connect);
      log(`case ${n}/${cases} done`);
    } catch (error) {
      notOpened.push(n);
      log(`case ${n}/${cases}: ${(error as Error).message}`);
    }
  }
  await updateReports(url, agent, connect);
  log("reports updated");
  return { cases, notOpened };
}

const main = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (main) {
  const [url = process.env.AUTOBAHN_URL ?? "ws://127.0.0.1:9001", agent = process.env.AUTOBAHN_AGENT ?? "typhoon"] = process.argv.slice(2);
  runAutobahnClient({ url, agent }).then(
    (result) => process.exit(result.notOpened.length === 0 ? 0 : 1),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
