/**
 * What `npm run bench` measures: the servers, the load scenarios, and the
 * targets the issue set, for HTTP (wrk) and for WebSocket echo (a Bun load
 * generator). Add an entry here to measure something new; the runner needs
 * nothing else.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";

/** The repository root (bench/..). */
export const ROOT = join(import.meta.dirname, "..");

/** Where results go (gitignored), and the bundles of the Node servers (see bench/lib/bundle.ts). */
export const RESULTS = join(ROOT, "bench/results");
export const BUNDLES = join(RESULTS, "bundles");

/** Node itself, and the flags that let it run TypeScript through tsx. */
export const NODE = process.execPath;
export const TSX = ["--import", "tsx"];

/**
 * Bun: `$BENCH_BUN`, else the dev dependency's binary
 * (node_modules/.bin/bun), else `bun` on the PATH.
 */
export const BUN = process.env.BENCH_BUN ?? (existsSync(join(ROOT, "node_modules/.bin/bun")) ? join(ROOT, "node_modules/.bin/bun") : "bun");

let bunVersion: string | null | undefined;

/** Bun's version, or null when it cannot be run. */
export function bunAvailable(): string | null {
  if (bunVersion === undefined) {
    const r = spawnSync(BUN, ["--version"], { encoding: "utf8" });
    bunVersion = r.status === 0 ? r.stdout.trim() : null;
  }
  return bunVersion;
}

function bunMissing(): string | null {
  return bunAvailable() === null ? `Bun cannot be run (${BUN}; npm install, or set BENCH_BUN)` : null;
}

/** One server to measure. */
export interface ServerDef {
  /** Short id, used on the command line (`--only`) and in the JSON. */
  readonly id: string;
  /** The name printed in the table. */
  readonly name: string;
  /**
   * The command, run from the repository root and pinned to the server CPU
   * by the runner. It must listen on `$HOST:$PORT` and exit on SIGTERM (see
   * bench/servers/common.ts). If `command[0]` is Node, profiling adds its
   * flags right after it.
   */
  readonly command: readonly string[];
  /** Extra environment. */
  readonly env?: Readonly<Record<string, string>>;
  /** Why this server cannot run here (missing runtime, missing module), or null. */
  readonly unavailable?: () => string | null;
  /** Only run when named with `--only` (variants for investigations). */
  readonly optional?: boolean;
  /**
   * The server answers a line `count` on stdin with `count <n>`, the
   * requests it answered; the runner then checks wrk's count against it.
   */
  readonly countsRequests?: boolean;
  /** The table it is shown in (a {@link GroupDef} id). @default "node" */
  readonly group?: string;
  /**
   * Where it runs: `"pinned"` (the default) pins the server to the server
   * CPU and wrk to the client CPU; `"spread"` lets the server's processes
   * and wrk share both (for servers of several processes).
   */
  readonly placement?: "pinned" | "spread";
}

/**
 * One table of servers: its own members (`ServerDef.group`), rows of other
 * groups repeated for reference, and the server its ratios are computed
 * against.
 */
export interface GroupDef {
  readonly id: string;
  readonly title: string;
  /** The server every ratio in this table is computed against. */
  readonly baseline: string;
  /** Servers of other groups shown again in this table. */
  readonly references?: readonly string[];
  /** A sentence printed under the title. */
  readonly note?: string;
}

/** One way of loading the servers. */
export interface ScenarioDef {
  readonly id: string;
  readonly name: string;
  /** Requests per write on each connection (1 = plain keep-alive). */
  readonly depth: number;
  /** The wrk Lua script, relative to the root; it prints a BENCH_JSON line in `done`. */
  readonly script: string;
  /** Arguments after `--` for the script. */
  readonly scriptArgs: readonly string[];
  /** The path requested. */
  readonly path: string;
}

/** "`server` reaches at least `min` times `versus`" in a scenario. */
export interface TargetDef {
  readonly scenario: string;
  readonly server: string;
  readonly versus: string;
  readonly min: number;
}

/** The server every ratio is computed against. */
export const BASELINE = "node-http";

function nodeServer(file: string): string[] {
  return [NODE, ...TSX, `bench/servers/${file}`];
}

function bunServer(file: string): string[] {
  return [BUN, `bench/servers/${file}`];
}

function bunAndWebLayer(): string | null {
  return bunMissing() ?? webLayerMissing();
}

function webLayerMissing(): string | null {
  const index = join(ROOT, "src/web/index.ts");
  if (!existsSync(index)) return "src/web/index.ts does not exist yet";
  if (!/\bApplication\b/.test(readFileSync(index, "utf8"))) return "src/web/index.ts does not export Application yet";
  return null;
}

export const GROUPS: readonly GroupDef[] = [
  { id: "node", title: "Node: typhoon vs node:http", baseline: BASELINE },
  {
    id: "bun",
    title: "Bun: typhoon vs Bun.serve",
    baseline: "bun-serve",
    note: "The same typhoon servers run by `bun` (they pick the Bun transport, `Bun.listen`, by default), `Bun.serve`, and a raw `Bun.listen` ceiling; pinned as on Node.",
  },
  {
    id: "2proc",
    title: "Two processes (forkProcesses(2)), pinned to the server CPU",
    baseline: BASELINE,
    references: ["typhoon-app", "typhoon-bare", "node-http"],
    note:
      "Both worker processes (and the idle primary) pinned to the server CPU, wrk to the other CPU, as every other server: the two workers share one CPU, so this shows what the second process costs, not what it gains. The 1-process rows are repeated from the Node table.",
  },
  {
    id: "2proc-spread",
    title: "Two processes (forkProcesses(2)), servers and wrk sharing both CPUs",
    baseline: "node-http-spread",
    note:
      "Nothing pinned to one CPU: the server's processes and wrk (one thread) may run on both CPUs, and the scheduler shares them out. wrk needs about a CPU of its own at these rates, so two workers get about one CPU between them plus what wrk leaves; the 1-process rows are measured the same way for comparison. Server CPU is the sum over the server's processes (per worker in the JSON).",
  },
];

export const SERVERS: readonly ServerDef[] = [
  { id: "typhoon-app", name: "typhoon Application", command: nodeServer("typhoon-app.ts"), unavailable: webLayerMissing },
  { id: "typhoon-bare", name: "typhoon HTTPServer", command: nodeServer("typhoon-bare.ts") },
  { id: "node-http", name: "node:http", command: nodeServer("node-http.ts") },
  { id: "raw-net", name: "raw node:net (ceiling)", command: nodeServer("raw-net.ts"), countsRequests: true },
  { id: "typhoon-app-bun", name: "typhoon Application on Bun", command: bunServer("typhoon-app.ts"), unavailable: bunAndWebLayer, group: "bun" },
  { id: "typhoon-bare-bun", name: "typhoon HTTPServer on Bun", command: bunServer("typhoon-bare.ts"), unavailable: bunMissing, group: "bun" },
  { id: "bun-serve", name: "Bun.serve", command: bunServer("bun-serve.ts"), unavailable: bunMissing, group: "bun" },
  { id: "raw-bun", name: "raw Bun.listen (ceiling)", command: bunServer("raw-bun.ts"), unavailable: bunMissing, group: "bun", countsRequests: true },
  {
    id: "typhoon-app-2proc",
    name: "typhoon Application, 2 processes",
    command: nodeServer("typhoon-app.ts"),
    env: { BENCH_PROCESSES: "2" },
    unavailable: webLayerMissing,
    group: "2proc",
  },
  { id: "typhoon-bare-2proc", name: "typhoon HTTPServer, 2 processes", command: nodeServer("typhoon-bare.ts"), env: { BENCH_PROCESSES: "2" }, group: "2proc" },
  { id: "node-http-spread", name: "node:http, 1 process", command: nodeServer("node-http.ts"), group: "2proc-spread", placement: "spread" },
  { id: "typhoon-app-spread", name: "typhoon Application, 1 process", command: nodeServer("typhoon-app.ts"), unavailable: webLayerMissing, group: "2proc-spread", placement: "spread" },
  {
    id: "typhoon-app-2proc-spread",
    name: "typhoon Application, 2 processes",
    command: nodeServer("typhoon-app.ts"),
    env: { BENCH_PROCESSES: "2" },
    unavailable: webLayerMissing,
    group: "2proc-spread",
    placement: "spread",
  },
  {
    id: "typhoon-bare-2proc-spread",
    name: "typhoon HTTPServer, 2 processes",
    command: nodeServer("typhoon-bare.ts"),
    env: { BENCH_PROCESSES: "2" },
    group: "2proc-spread",
    placement: "spread",
  },
  {
    id: "node-http-2proc-spread",
    name: "node:http, 2 processes (cluster)",
    command: nodeServer("node-http.ts"),
    env: { BENCH_PROCESSES: "2" },
    group: "2proc-spread",
    placement: "spread",
    optional: true,
  },
  {
    id: "typhoon-bare-async",
    name: "typhoon HTTPServer, async callback",
    command: nodeServer("typhoon-bare.ts"),
    env: { BENCH_ASYNC: "1" },
    optional: true,
  },
  {
    id: "typhoon-bare-nagle",
    name: "typhoon HTTPServer, Nagle on (noDelay false)",
    command: nodeServer("typhoon-bare.ts"),
    env: { BENCH_NODELAY: "0" },
    optional: true,
  },
];

export const SCENARIOS: readonly ScenarioDef[] = [
  { id: "plain", name: "keep-alive, 1 request per write", depth: 1, script: "bench/wrk/report.lua", scriptArgs: [], path: "/" },
  { id: "pipelined", name: "keep-alive, 16 requests pipelined per write", depth: 16, script: "bench/wrk/pipeline.lua", scriptArgs: ["16"], path: "/" },
];

export const TARGETS: readonly TargetDef[] = [
  { scenario: "plain", server: "typhoon-app", versus: BASELINE, min: 1.3 },
  { scenario: "plain", server: "typhoon-bare", versus: BASELINE, min: 1.5 },
  { scenario: "plain", server: "typhoon-bare", versus: "raw-net", min: 0.75 },
  { scenario: "pipelined", server: "typhoon-bare", versus: BASELINE, min: 4 },
  { scenario: "pipelined", server: "typhoon-app", versus: BASELINE, min: 4 },
  { scenario: "plain", server: "typhoon-app-bun", versus: "bun-serve", min: 0.9 },
  { scenario: "plain", server: "typhoon-bare-bun", versus: "bun-serve", min: 0.9 },
  { scenario: "pipelined", server: "typhoon-app-bun", versus: "bun-serve", min: 4 },
  { scenario: "pipelined", server: "typhoon-bare-bun", versus: "bun-serve", min: 4 },
];

// ---------------------------------------------------------------- WebSocket

/**
 * One WebSocket echo server. Its command listens on `$HOST:$PORT`, echoes
 * every message at `path` as it came, accepts permessage-deflate only with
 * `BENCH_WS_COMPRESS=1`, exits on SIGTERM, and with `BENCH_GC=1` answers a
 * line `gc` on stdin with `gc {memoryUsage after a full GC}` (Node needs
 * `--expose-gc`: the memory benchmark adds it after `NODE`).
 */
export interface WsServerDef {
  readonly id: string;
  readonly name: string;
  readonly command: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** The path the load generator connects to. */
  readonly path: string;
  readonly unavailable?: () => string | null;
  /** Only run when named with `--only`. */
  readonly optional?: boolean;
  /** It cannot do permessage-deflate: skipped in the compressed runs. */
  readonly noCompression?: boolean;
}

/** "`server` echoes at least `min` times the messages/s of `versus`" for messages of `size` bytes (every compression and depth). */
export interface WsTargetDef {
  readonly server: string;
  readonly versus: string;
  readonly size: number;
  readonly min: number;
}

/** "`server` holds at most `max` times the memory per idle connection of `versus`". */
export interface MemoryTargetDef {
  readonly server: string;
  readonly versus: string;
  readonly max: number;
}

/** The WebSocket server every ratio is computed against. */
export const WS_BASELINE = "ws";

function wsNodeServer(file: string): string[] {
  return [NODE, ...TSX, `bench/ws/${file}`];
}

export const WS_SERVERS: readonly WsServerDef[] = [
  { id: "typhoon-ws", name: "typhoon WebSocketHandler", command: wsNodeServer("typhoon-echo.ts"), path: "/", unavailable: webLayerMissing },
  { id: "ws", name: "ws", command: wsNodeServer("ws-echo.ts"), path: "/" },
  { id: "raw-ws-net", name: "raw node:net echo (ceiling for small messages)", command: wsNodeServer("raw-net-echo.ts"), path: "/", noCompression: true },
  {
    id: "typhoon-ws-noawait",
    name: "typhoon WebSocketHandler, send not awaited",
    command: wsNodeServer("typhoon-echo.ts"),
    env: { BENCH_WS_AWAIT: "0" },
    path: "/",
    unavailable: webLayerMissing,
    optional: true,
  },
  {
    id: "typhoon-ws-threshold0",
    name: "typhoon WebSocketHandler, compression threshold 0",
    command: wsNodeServer("typhoon-echo.ts"),
    env: { BENCH_WS_THRESHOLD: "0" },
    path: "/",
    unavailable: webLayerMissing,
    optional: true,
  },
  { id: "typhoon-ws-bun", name: "typhoon WebSocketHandler on Bun", command: [BUN, "bench/ws/typhoon-echo.ts"], path: "/", unavailable: bunAndWebLayer, optional: true },
  { id: "bun-ws", name: "Bun.serve websocket", command: [BUN, "bench/ws/bun-echo.ts"], path: "/", unavailable: bunMissing, optional: true },
];

export const WS_TARGETS: readonly WsTargetDef[] = [
  { server: "typhoon-ws", versus: WS_BASELINE, size: 32, min: 1.3 },
  { server: "typhoon-ws", versus: WS_BASELINE, size: 16 * 1024, min: 1 },
];

export const MEMORY_TARGETS: readonly MemoryTargetDef[] = [{ server: "typhoon-ws", versus: WS_BASELINE, max: 1 }];

/** Benchmark parameters; every one can be set from the environment. */
export interface Params {
  /** Seconds per measured wrk run, whole (BENCH_DURATION). */
  duration: number;
  /** Seconds of the uncounted wrk run before it (BENCH_WARMUP; 0 for none). */
  warmup: number;
  /** Rounds; servers are interleaved within each (BENCH_ROUNDS). */
  rounds: number;
  /** wrk connections (BENCH_CONNECTIONS). */
  connections: number;
  /** wrk threads (BENCH_THREADS). */
  threads: number;
  /** CPU the servers are pinned to (BENCH_SERVER_CPU). */
  serverCpu: string;
  /** CPU wrk is pinned to (BENCH_CLIENT_CPU). */
  clientCpu: string;
  /** Seconds per engine measurement (BENCH_ENGINE_DURATION). */
  engineDuration: number;
  /**
   * CPU (in CPUs) other tasks may take on the two benchmark CPUs during a
   * measured run before it counts as disturbed (BENCH_MAX_OTHERS).
   */
  maxOthers: number;
  /** How many times a disturbed run is measured again; the least disturbed counts (BENCH_RETRIES). */
  retries: number;
  /** WebSocket echo: message sizes in bytes (BENCH_WS_SIZES, comma-separated). */
  wsSizes: number[];
  /** WebSocket echo: messages in flight per connection (BENCH_WS_DEPTHS). */
  wsDepths: number[];
  /** WebSocket echo: without and/or with permessage-deflate (BENCH_WS_COMPRESSION: off,on). */
  wsCompression: boolean[];
  /** WebSocket echo: connections (BENCH_WS_CONNECTIONS). */
  wsConnections: number;
  /**
   * WebSocket echo: the load generator's client (BENCH_WS_CLIENT): `native`
   * (Bun's WebSocket), `frames` (pre-built frames over Bun.connect, one
   * write per read), or `auto`: native with one message in flight, frames
   * with more (see bench/ws/load.ts).
   */
  wsClient: "auto" | "native" | "frames";
  /** Memory: idle connections opened (BENCH_MEM_CONNECTIONS). */
  memConnections: number;
  /** Memory: seconds the connections sit idle before the server is measured (BENCH_MEM_IDLE). */
  memIdle: number;
  /** Memory: rounds (BENCH_MEM_ROUNDS). */
  memRounds: number;
  /**
   * Memory: connections opened, echoed and closed before the baseline, so
   * that what is built once (optimized code, buffers) is not counted per
   * connection (BENCH_MEM_WARMUP).
   */
  memWarmup: number;
  /**
   * Memory: heap snapshots of Node servers before and after opening the
   * connections, and a table of what grew per connection (BENCH_MEM_SNAPSHOT=1).
   */
  memSnapshot: boolean;
}

function numberFromEnv(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw.replace(/s$/, ""));
  if (!Number.isFinite(value) || value < min) {
    throw new RangeError(`Cannot use ${name}=${JSON.stringify(raw)}: it must be a number of at least ${min}`);
  }
  return value;
}

function listFromEnv(name: string, fallback: string, min: number): number[] {
  const raw = process.env[name] ?? fallback;
  const values = raw.split(",").map((v) => Number(v.trim()));
  if (values.length === 0 || values.some((v) => !Number.isInteger(v) || v < min)) {
    throw new RangeError(`Cannot use ${name}=${JSON.stringify(raw)}: it must be a comma-separated list of whole numbers of at least ${min}`);
  }
  return values;
}

function compressionFromEnv(): boolean[] {
  const raw = process.env.BENCH_WS_COMPRESSION ?? "off,on";
  const out = raw.split(",").map((v) => v.trim());
  if (out.length === 0 || out.some((v) => v !== "on" && v !== "off")) {
    throw new RangeError(`Cannot use BENCH_WS_COMPRESSION=${JSON.stringify(raw)}: give off, on, or off,on`);
  }
  return out.map((v) => v === "on");
}

function clientFromEnv(): Params["wsClient"] {
  const raw = process.env.BENCH_WS_CLIENT ?? "auto";
  if (raw !== "auto" && raw !== "native" && raw !== "frames") throw new RangeError(`Cannot use BENCH_WS_CLIENT=${JSON.stringify(raw)}: give auto, native or frames`);
  return raw;
}

export function paramsFromEnv(): Params {
  return {
    // wrk takes whole seconds.
    duration: Math.round(numberFromEnv("BENCH_DURATION", 5, 1)),
    warmup: Math.round(numberFromEnv("BENCH_WARMUP", 2, 0)),
    rounds: Math.round(numberFromEnv("BENCH_ROUNDS", 3, 1)),
    connections: Math.round(numberFromEnv("BENCH_CONNECTIONS", 64, 1)),
    threads: Math.round(numberFromEnv("BENCH_THREADS", 1, 1)),
    serverCpu: process.env.BENCH_SERVER_CPU ?? "0",
    clientCpu: process.env.BENCH_CLIENT_CPU ?? "1",
    engineDuration: numberFromEnv("BENCH_ENGINE_DURATION", 2, 0.2),
    maxOthers: numberFromEnv("BENCH_MAX_OTHERS", 0.1, 0),
    retries: Math.round(numberFromEnv("BENCH_RETRIES", 2, 0)),
    wsSizes: listFromEnv("BENCH_WS_SIZES", "32,16384", 1),
    wsDepths: listFromEnv("BENCH_WS_DEPTHS", "1,16", 1),
    wsCompression: compressionFromEnv(),
    wsConnections: Math.round(numberFromEnv("BENCH_WS_CONNECTIONS", 64, 1)),
    wsClient: clientFromEnv(),
    memConnections: Math.round(numberFromEnv("BENCH_MEM_CONNECTIONS", 10_000, 1)),
    memIdle: numberFromEnv("BENCH_MEM_IDLE", 3, 0),
    memRounds: Math.round(numberFromEnv("BENCH_MEM_ROUNDS", 1, 1)),
    memWarmup: Math.round(numberFromEnv("BENCH_MEM_WARMUP", 2000, 0)),
    memSnapshot: process.env.BENCH_MEM_SNAPSHOT === "1",
  };
}
