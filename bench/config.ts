/**
 * What `npm run bench` measures: the servers, the load scenarios, and the
 * targets the issue set. Add an entry here to measure something new (Bun's
 * `Bun.serve`, typhoon on Bun, a 2-process server, a WebSocket echo with its
 * own wrk script...); the runner needs nothing else.
 *
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";

/** The repository root (bench/..). */
export const ROOT = join(import.meta.dirname, "..");

/** Node itself, and the flags that let it run TypeScript through tsx. */
export const NODE = process.execPath;
export const TSX = ["--import", "tsx"];

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

function webLayerMissing(): string | null {
  const index = join(ROOT, "src/web/index.ts");
  if (!existsSync(index)) return "src/web/index.ts does not exist yet";
  if (!/\bApplication\b/.test(readFileSync(index, "utf8"))) return "src/web/index.ts does not export Application yet";
  return null;
}

export const SERVERS: readonly ServerDef[] = [
  { id: "typhoon-app", name: "typhoon Application", command: nodeServer("typhoon-app.ts"), unavailable: webLayerMissing },
  { id: "typhoon-bare", name: "typhoon HTTPServer", command: nodeServer("typhoon-bare.ts") },
  { id: "node-http", name: "node:http", command: nodeServer("node-http.ts") },
  { id: "raw-net", name: "raw node:net (ceiling)", command: nodeServer("raw-net.ts"), countsRequests: true },
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
];

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
  };
}
