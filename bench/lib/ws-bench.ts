/**
 * The WebSocket benchmarks: echo throughput (messages/s) of typhoon's
 * `WebSocketHandler` against `ws`, loaded by Bun's WebSocket client
 * (bench/ws/load.ts), and the memory each idle connection costs the server
 * (bench/ws/idle.ts holding 10,000 connections open). See bench/README.md.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import {
  BUN,
  BUNDLES,
  MEMORY_TARGETS,
  RESULTS,
  NODE,
  WS_BASELINE,
  WS_SERVERS,
  WS_TARGETS,
  bunAvailable,
  type Params,
  type WsServerDef,
} from "../config";
import type { GcReport } from "../servers/common";
import { bundleServer, runnableCommand } from "./bundle";
import { heapGrowth, heapGrowthTable } from "./heap";
import { clocksNowUs, mainThreadProfile, profileMarkdown, type ProfileSummary, type ProfileWindow } from "./profile";
import { SourceMap } from "./sourcemap";
import { cpuBusySeconds, cpuSeconds, freePort, indent, parseCpuList, processTree, sleep, spawnPinned, stopChild, waitForPort, type Child } from "./proc";
import { disturbance as cpuDisturbance, fmtInt, median, whyDisturbed as disturbedBecause } from "./format";

const HOST = "127.0.0.1";

// ------------------------------------------------------------------ servers

/** Picks the WebSocket servers: the default ones, or those named with `--only`. */
export function selectWsServers(only: string[] | null): { servers: WsServerDef[]; skipped: Array<{ id: string; reason: string }> } {
  const chosen = only === null ? WS_SERVERS.filter((s) => !s.optional) : WS_SERVERS.filter((s) => only.includes(s.id));
  const servers: WsServerDef[] = [];
  const skipped: Array<{ id: string; reason: string }> = [];
  for (const s of chosen) {
    const reason = s.unavailable?.() ?? null;
    if (reason === null) servers.push(s);
    else {
      skipped.push({ id: s.id, reason });
      console.warn(`bench: skipping ${s.name}: ${reason}`);
    }
  }
  if (servers.length === 0) throw new Error(`no WebSocket server to measure (known: ${WS_SERVERS.map((s) => s.id).join(", ")})`);
  return { servers, skipped };
}

interface RunningServer {
  child: Child;
  port: number;
  url: string;
  /** The command it was started with. */
  command: string[];
}

async function startWsServer(def: WsServerDef, cpu: string, compress: boolean, extra: { gc?: boolean; bundles?: string } = {}): Promise<RunningServer> {
  const port = await freePort(HOST);
  let command = extra.bundles === undefined ? [...def.command] : await runnableCommand(def.command, extra.bundles);
  // The memory benchmark collects garbage on request: Node needs the flag.
  if (extra.gc === true && command[0] === NODE) command = [NODE, "--expose-gc", ...command.slice(1)];
  const env: Record<string, string> = { ...def.env, PORT: String(port), HOST, BENCH_EXIT_WITH_STDIN: "1", BENCH_WS_COMPRESS: compress ? "1" : "0" };
  if (extra.gc === true) env.BENCH_GC = "1";
  const child = spawnPinned(cpu, command, env);
  try {
    await waitForPort(child, HOST, port);
  } catch (error) {
    await stopChild(child, 1000);
    throw new Error(`Cannot start ${def.name} (${command.join(" ")}): ${(error as Error).message}`);
  }
  return { child, port, url: `ws://${HOST}:${port}${def.path}`, command };
}

// --------------------------------------------------------------------- load

/** What one run of the load generator measured. */
export interface WsLoadResult {
  /** Echoes per second in the measured window. */
  rate: number;
  messages: number;
  durationSec: number;
  /** Round trip per message, µs. */
  latencyUs: { p50: number; p90: number; p99: number };
  extensions: string;
  /** Share of one CPU the server used in the window (summed over its processes). */
  serverCpu: number;
  /** Share of one CPU the load generator used. */
  clientCpu: number;
  /** CPU other tasks took on the benchmark CPUs. */
  othersCpu: number;
  /** The measured window, on the clocks CPU profiles use. */
  window: ProfileWindow;
}

interface LoadOptions {
  cpu: string;
  serverCpus: string;
  serverPid: number;
  url: string;
  size: number;
  depth: number;
  connections: number;
  compress: boolean;
  warmup: number;
  duration: number;
  client: "native" | "frames";
}

/** The load against a running server, with the run's CPUs, connections and durations. */
function loadOptions(params: Params, server: RunningServer, size: number, depth: number, compress: boolean): LoadOptions {
  return {
    cpu: params.clientCpu,
    serverCpus: params.serverCpu,
    serverPid: server.child.pid,
    url: server.url,
    size,
    depth,
    connections: params.wsConnections,
    compress,
    warmup: params.warmup,
    duration: params.duration,
    client: wsClientFor(params, depth),
  };
}

/** The client for a depth (see `Params.wsClient`). */
export function wsClientFor(params: Params, depth: number): "native" | "frames" {
  return params.wsClient === "auto" ? (depth === 1 ? "native" : "frames") : params.wsClient;
}

interface Snapshot {
  clocks: { mono: number; wall: number };
  t: number;
  server: number;
  client: number;
  busy: number;
}

/** Runs bench/ws/load.ts on Bun, pinned, and reads CPU counters at its BENCH_START and BENCH_STOP lines. */
export async function runWsLoad(o: LoadOptions): Promise<WsLoadResult> {
  const args = [
    BUN,
    "bench/ws/load.ts",
    "--url",
    o.url,
    "--connections",
    String(o.connections),
    "--depth",
    String(o.depth),
    "--size",
    String(o.size),
    "--warmup",
    String(o.warmup),
    "--duration",
    String(o.duration),
    "--client",
    o.client,
  ];
  if (o.compress) args.push("--compress");
  const load = spawnPinned(o.cpu, args);
  const cpus = [...new Set([...parseCpuList(o.cpu), ...parseCpuList(o.serverCpus)])];
  let serverPids = [o.serverPid];
  const snap = (): Snapshot => ({
    clocks: clocksNowUs(),
    t: performance.now() / 1000,
    server: serverPids.reduce((sum, pid) => sum + (cpuSeconds(pid) ?? 0), 0),
    client: cpuSeconds(load.pid) ?? NaN,
    busy: cpuBusySeconds(cpus),
  });
  let start: Snapshot | null = null;
  let stop: Snapshot | null = null;
  let json: string | null = null;
  load.onLine((line) => {
    if (line.startsWith("BENCH_READY")) serverPids = processTree(o.serverPid);
    else if (line === "BENCH_START") start = snap();
    else if (line === "BENCH_STOP") stop = snap();
    else if (line.startsWith("BENCH_JSON ")) json = line.slice("BENCH_JSON ".length);
  });
  const code = await load.exited;
  if (code !== 0 || json === null || start === null || stop === null) {
    throw new Error(`The WebSocket load generator failed (exit ${code}): ${args.join(" ")}\n${indent(load.output())}`);
  }
  const a = start as Snapshot;
  const b = stop as Snapshot;
  const s = JSON.parse(json) as { messages: number; durationUs: number; rate: number; latencyUs: WsLoadResult["latencyUs"]; extensions: string };
  const dt = b.t - a.t;
  const serverCpu = (b.server - a.server) / dt;
  const clientCpu = (b.client - a.client) / dt;
  return {
    rate: s.rate,
    messages: s.messages,
    durationSec: s.durationUs / 1e6,
    latencyUs: s.latencyUs,
    extensions: s.extensions,
    serverCpu,
    clientCpu,
    othersCpu: Math.max(0, (b.busy - a.busy) / dt - serverCpu - (Number.isFinite(clientCpu) ? clientCpu : 0)),
    window: { startUs: a.clocks.mono, endUs: b.clocks.mono, wallStartUs: a.clocks.wall, wallEndUs: b.clocks.wall },
  };
}

/** How far a run is from a clean measurement, in CPUs (as for wrk runs). */
function disturbance(r: WsLoadResult): number {
  return cpuDisturbance(r.othersCpu, r.serverCpu, r.clientCpu);
}

function whyDisturbed(r: WsLoadResult): string {
  return disturbedBecause(r.othersCpu, r.serverCpu, r.clientCpu, "client");
}

// --------------------------------------------------------------------- echo

interface WsRun {
  round: number;
  server: string;
  compress: boolean;
  size: number;
  depth: number;
  client: "native" | "frames";
  result: WsLoadResult;
  attempts: number;
}

interface WsRow {
  server: string;
  name: string;
  compress: boolean;
  size: number;
  depth: number;
  client: "native" | "frames";
  rate: number;
  p99Ms: number;
  ratio: number | null;
  rounds: number[];
  serverCpu: number;
  clientCpu: number;
  othersCpu: number;
  disturbedRounds: number;
}

interface WsTargetResult {
  server: string;
  versus: string;
  size: number;
  depth: number;
  compress: boolean;
  min: number;
  ratio: number | null;
  pass: boolean | null;
}

function fmtSize(bytes: number): string {
  return bytes >= 1024 && bytes % 1024 === 0 ? `${bytes / 1024} KiB` : `${bytes} B`;
}

function pct(share: number): string {
  return Number.isFinite(share) ? `${(share * 100).toFixed(0)}%` : "–";
}

/** `npm run bench -- ws`: echo messages/s, typhoon against ws, every size × depth × compression. */
export async function runWs(params: Params, only: string[] | null): Promise<Record<string, unknown>> {
  const { servers, skipped } = selectWsServers(only);
  const cases = params.wsSizes.flatMap((size) => params.wsDepths.map((depth) => ({ size, depth })));
  console.log(
    `\n## WebSocket echo\n\n${params.wsConnections} connections from Bun ${bunAvailable()} (bench/ws/load.ts) on CPU ${params.clientCpu}, ` +
      `servers on Node ${process.version} on CPU ${params.serverCpu}; binary messages of ${params.wsSizes.map(fmtSize).join(" and ")}, ` +
      `client ${params.wsClient === "auto" ? "Bun's WebSocket (native) with 1 in flight, pre-built frames over Bun.connect with more" : params.wsClient}; ` +
      `${params.wsDepths.join(" and ")} in flight per connection; ${params.warmup} s warm-up, ${params.duration} s measured; ` +
      `${params.rounds} rounds, servers interleaved: ${servers.map((s) => s.id).join(", ")}\n`,
  );
  const runs: WsRun[] = [];
  for (let round = 1; round <= params.rounds; round++) {
    for (const compress of params.wsCompression) {
      for (const def of servers.filter((s) => !(compress && s.noCompression === true))) {
        const server = await startWsServer(def, params.serverCpu, compress, { bundles: BUNDLES });
        try {
          for (const { size, depth } of cases) {
            let best: WsRun | null = null;
            for (let attempt = 0; attempt <= params.retries; attempt++) {
              const client = wsClientFor(params, depth);
              const result = await runWsLoad(loadOptions(params, server, size, depth, compress));
              if (best === null || disturbance(result) < disturbance(best.result)) best = { round, server: def.id, compress, size, depth, client, result, attempts: attempt + 1 };
              else best.attempts = attempt + 1;
              if (disturbance(result) <= params.maxOthers) break;
              if (attempt < params.retries) {
                console.log(`round ${round}  ${label(compress, size, depth)} ${client.padEnd(6)}  ${def.id.padEnd(12)} disturbed: ${whyDisturbed(result)} (${fmtInt(result.rate)} msg/s); measuring again`);
                await sleep(2000);
              }
            }
            const r = best!.result;
            runs.push(best!);
            console.log(
              `round ${round}  ${label(compress, size, depth)} ${best!.client.padEnd(6)}  ${def.id.padEnd(12)} ${fmtInt(r.rate).padStart(9)} msg/s  p99 ${(r.latencyUs.p99 / 1000).toFixed(2).padStart(6)} ms  ` +
                `server CPU ${pct(r.serverCpu)}  client CPU ${pct(r.clientCpu)}  others ${pct(r.othersCpu)}` +
                (disturbance(r) > params.maxOthers ? ` (DISTURBED: ${whyDisturbed(r)})` : ""),
            );
          }
        } finally {
          await stopChild(server.child);
        }
      }
    }
  }

  const rows: WsRow[] = [];
  const targets: WsTargetResult[] = [];
  const out: string[] = [];
  for (const compress of params.wsCompression) {
    const tableRows: WsRow[] = [];
    for (const { size, depth } of cases) {
      const group: WsRow[] = [];
      for (const def of servers.filter((s) => !(compress && s.noCompression === true))) {
        const mine = runs.filter((r) => r.server === def.id && r.compress === compress && r.size === size && r.depth === depth);
        group.push({
          server: def.id,
          name: def.name,
          compress,
          size,
          depth,
          client: wsClientFor(params, depth),
          rate: median(mine.map((r) => r.result.rate)),
          p99Ms: median(mine.map((r) => r.result.latencyUs.p99)) / 1000,
          ratio: null,
          rounds: mine.map((r) => r.result.rate),
          serverCpu: median(mine.map((r) => r.result.serverCpu)),
          clientCpu: median(mine.map((r) => r.result.clientCpu)),
          othersCpu: median(mine.map((r) => r.result.othersCpu)),
          disturbedRounds: mine.filter((r) => disturbance(r.result) > params.maxOthers).length,
        });
      }
      const base = group.find((r) => r.server === WS_BASELINE);
      for (const r of group) r.ratio = base !== undefined && base.rate > 0 ? r.rate / base.rate : null;
      for (const t of WS_TARGETS.filter((t) => t.size === size)) {
        const a = group.find((r) => r.server === t.server);
        const b = group.find((r) => r.server === t.versus);
        if (a === undefined) continue;
        const ratio = b !== undefined && b.rate > 0 ? a.rate / b.rate : null;
        targets.push({ ...t, depth, compress, ratio, pass: ratio === null ? null : ratio >= t.min });
      }
      tableRows.push(...group);
    }
    rows.push(...tableRows);
    out.push(wsTable(compress, tableRows, targets.filter((t) => t.compress === compress), params));
  }
  const missing = WS_TARGETS.filter((t) => !targets.some((x) => x.server === t.server && x.size === t.size && x.ratio !== null));
  if (missing.length > 0) out.push(missing.map((t) => `(target ${t.server} ≥${t.min}× ${t.versus} for ${fmtSize(t.size)} not measured)`).join("\n"));
  const markdown = out.join("\n\n");
  console.log(`\n${markdown}`);
  return { servers: servers.map(({ id, name, command, env }) => ({ id, name, command, env })), skipped, runs, rows, targets, markdown };
}

function label(compress: boolean, size: number, depth: number): string {
  return `${compress ? "deflate" : "plain  "} ${fmtSize(size).padStart(6)} ×${String(depth).padEnd(2)}`;
}

function wsTable(compress: boolean, rows: WsRow[], targets: WsTargetResult[], params: Params): string {
  const lines = [
    `### ${compress ? "With permessage-deflate (each server's defaults: context takeover, zlib level 6; typhoon sends messages under 1 KiB uncompressed, ws compresses every message)" : "Without compression"}`,
    "",
    `| message | in flight per connection | client | server | messages/s (median) | p99 round trip ms | × ws | target | rounds msg/s | server CPU | client CPU | others CPU |`,
    "|---|---:|---|---|---:|---:|---:|---|---|---:|---:|---:|",
  ];
  for (const r of rows) {
    const target = targets
      .filter((t) => t.server === r.server && t.size === r.size && t.depth === r.depth)
      .map((t) => `≥${t.min}× ${t.versus}: ${t.ratio === null ? "–" : `${t.ratio.toFixed(2)}×`} ${t.pass === null ? "n/a" : t.pass ? "PASS" : "MISS"}`)
      .join("; ");
    lines.push(
      `| ${fmtSize(r.size)} | ${r.depth} | ${r.client} | ${r.name} | ${fmtInt(r.rate)} | ${Number.isFinite(r.p99Ms) ? r.p99Ms.toFixed(2) : "–"} | ${r.ratio === null ? "–" : `${r.ratio.toFixed(2)}×`} | ${target} | ` +
        `${r.rounds.map(fmtInt).join(" / ")} | ${pct(r.serverCpu)} | ${pct(r.clientCpu)} | ${pct(r.othersCpu)}${r.disturbedRounds > 0 ? ` ⚠ ${r.disturbedRounds}/${r.rounds.length}` : ""} |`,
    );
  }
  if (rows.some((r) => r.disturbedRounds > 0)) {
    lines.push(
      "",
      `⚠ = rounds still disturbed after ${params.retries} retries: other tasks took more than ${(params.maxOthers * 100).toFixed(0)}% of a CPU on the benchmark CPUs, ` +
        "or neither the server nor the client kept its CPU busy (≥90%); those figures are likely low.",
    );
  }
  return lines.join("\n");
}

// ------------------------------------------------------------------- memory

interface MemoryStep {
  /** What the connections had done when the server was measured. */
  step: "opened" | "one message";
  report: GcReport;
}

interface MemoryRun {
  round: number;
  server: string;
  compress: boolean;
  connections: number;
  baseline: GcReport;
  steps: MemoryStep[];
}

/** A line on the child's stdout that starts with `prefix`, after writing `command` (if any) on its stdin. */
function ask(child: Child, command: string | null, prefix: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      reject(new Error(`No ${JSON.stringify(prefix)} line${command === null ? "" : ` in answer to ${JSON.stringify(command)}`} within ${timeoutMs / 1000} s. Its output:\n${indent(child.output())}`));
    }, timeoutMs);
    void child.exited.then((code) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`It exited (${code}) before writing a ${JSON.stringify(prefix)} line. Its output:\n${indent(child.output())}`));
    });
    child.onLine((line) => {
      if (done || !line.startsWith(prefix)) return;
      done = true;
      clearTimeout(timer);
      resolve(line.slice(prefix.length).trim());
    });
    if (command !== null) child.process.stdin!.write(`${command}\n`);
  });
}

async function gcReport(server: Child): Promise<GcReport> {
  return JSON.parse(await ask(server, "gc", "gc ", 30_000)) as GcReport;
}

/** Open files allowed per process, as the shell reports it (`ulimit -n`). */
function openFileLimit(): number {
  const r = spawnSync("sh", ["-c", "ulimit -n"], { encoding: "utf8" });
  const n = Number(r.stdout.trim());
  return r.stdout.trim() === "unlimited" ? Infinity : Number.isFinite(n) ? n : 0;
}

/**
 * Warm-up connections are opened this many at a time (then echoed and
 * closed): enough handshakes for the JIT to optimize the paths a connection
 * takes, without growing the heap to hold many connections at once (which
 * the measured connections would then fill for free).
 */
const WARMUP_BATCH = 100;

/** `npm run bench -- memory`: memory per idle WebSocket connection with 10,000 open, typhoon against ws. */
export async function runMemory(params: Params, only: string[] | null): Promise<Record<string, unknown>> {
  const { servers, skipped } = selectWsServers(only);
  const n = params.memConnections;
  const limit = openFileLimit();
  // Each side holds n sockets (plus a few dozen files of its own).
  if (limit < n + 100) {
    throw new Error(`Cannot open ${n} connections: the open-file limit is ${limit} per process (ulimit -n); raise it to at least ${n + 100} or set BENCH_MEM_CONNECTIONS`);
  }
  const warm = Math.min(params.memWarmup, n);
  console.log(
    `\n## Memory per idle WebSocket connection\n\n${fmtInt(n)} connections from Bun's WebSocket client (bench/ws/idle.ts, one process, CPU ${params.clientCpu}); servers on Node ${process.version}, CPU ${params.serverCpu}, ` +
      `run with --expose-gc. Per server and compression: ${fmtInt(warm)} connections opened ${WARMUP_BATCH} at a time, each echoing one message, and closed (so that lazily built and optimized code and buffers exist, without a heap grown for many connections); ` +
      `a full GC (4 times) and process.memoryUsage() as the baseline; ${fmtInt(n)} connections opened and left idle ${params.memIdle} s, GC, measured; ` +
      `then each sends one 32-byte binary message and gets its echo, idle ${params.memIdle} s, GC, measured. Per connection = (after − baseline) / ${fmtInt(n)}. ` +
      `Open-file limit ${limit}; ${params.memRounds} round(s).\n`,
  );
  const runs: MemoryRun[] = [];
  const heapTables: string[] = [];
  for (let round = 1; round <= params.memRounds; round++) {
    for (const compress of params.wsCompression) {
      for (const def of servers.filter((s) => !(compress && s.noCompression === true))) {
        const server = await startWsServer(def, params.serverCpu, compress, { gc: true, bundles: BUNDLES });
        const args = [BUN, "bench/ws/idle.ts", "--url", server.url];
        if (compress) args.push("--compress");
        const client = spawnPinned(params.clientCpu, args);
        const ready = ask(client, null, "ready", 30_000);
        try {
          await ready;
          for (let done = 0; done < warm; done += WARMUP_BATCH) {
            await ask(client, `open ${Math.min(WARMUP_BATCH, warm - done)}`, "opened", 60_000);
            await ask(client, "message", "echoed", 60_000);
            await ask(client, "close", "closed", 60_000);
          }
          await sleep(1000);
          const snapshots = params.memSnapshot && server.command[0] === NODE;
          const snapshotFile = (which: string): string => join(RESULTS, "heap", `${def.id}-${compress ? "deflate" : "plain"}-${which}.heapsnapshot`);
          if (snapshots) {
            mkdirSync(join(RESULTS, "heap"), { recursive: true });
            await ask(server.child, `snapshot ${snapshotFile("before")}`, "snapshot ", 300_000);
          }
          const baseline = await gcReport(server.child);
          const t0 = performance.now();
          const opened = Number(await ask(client, `open ${n}`, "opened", 300_000));
          if (opened !== n) throw new Error(`Only ${opened} of ${n} connections are open`);
          const openSec = (performance.now() - t0) / 1000;
          await sleep(params.memIdle * 1000);
          const afterOpen = await gcReport(server.child);
          if (snapshots) {
            await ask(server.child, `snapshot ${snapshotFile("after")}`, "snapshot ", 600_000);
            const table = heapGrowthTable(
              `${def.name}, ${compress ? "permessage-deflate" : "no compression"}: heap objects that grew with ${fmtInt(n)} open connections (self sizes; bench/results/heap/)`,
              heapGrowth(snapshotFile("before"), snapshotFile("after"), n),
            );
            heapTables.push(table);
            console.log(`\n${table}\n`);
          }
          await ask(client, "message", "echoed", 120_000);
          await sleep(params.memIdle * 1000);
          const afterMessage = await gcReport(server.child);
          runs.push({ round, server: def.id, compress, connections: n, baseline, steps: [{ step: "opened", report: afterOpen }, { step: "one message", report: afterMessage }] });
          const per = (a: GcReport, k: keyof GcReport): string => fmtInt((a[k] - baseline[k]) / n);
          console.log(
            `round ${round}  ${compress ? "deflate" : "plain  "}  ${def.id.padEnd(12)} ${fmtInt(n)} open in ${openSec.toFixed(1)} s; per connection: ` +
              `opened RSS ${per(afterOpen, "rss")} B (young generation ${per(afterOpen, "youngGeneration")} B) heap ${per(afterOpen, "heapUsed")} B external ${per(afterOpen, "external")} B; ` +
              `after a message RSS ${per(afterMessage, "rss")} B (young generation ${per(afterMessage, "youngGeneration")} B) heap ${per(afterMessage, "heapUsed")} B external ${per(afterMessage, "external")} B`,
          );
          await ask(client, "close", "closed", 120_000);
        } finally {
          await stopChild(client, 2000);
          await stopChild(server.child);
        }
      }
    }
  }
  const table = memoryTable(runs, servers, params);
  const { rows, targets } = table;
  const markdown = [table.markdown, ...heapTables].join("\n\n");
  console.log(`\n${table.markdown}`);
  return { servers: servers.map(({ id, name, command, env }) => ({ id, name, command, env })), skipped, openFileLimit: limit, runs, rows, targets, markdown };
}

interface MemoryRow {
  server: string;
  name: string;
  compress: boolean;
  step: MemoryStep["step"];
  /** Bytes per connection (median over rounds). */
  rss: number;
  /** RSS less V8's young generation, which a full collection leaves empty but resident. */
  rssOld: number;
  heapUsed: number;
  external: number;
  /** heapUsed + external: what the JavaScript side holds. */
  js: number;
}

function memoryTable(runs: MemoryRun[], servers: WsServerDef[], params: Params): { markdown: string; rows: MemoryRow[]; targets: unknown[] } {
  const rows: MemoryRow[] = [];
  const targets: Array<{
    server: string;
    versus: string;
    compress: boolean;
    step: string;
    max: number;
    rssRatio: number | null;
    rssOldRatio: number | null;
    jsRatio: number | null;
    pass: boolean | null;
  }> = [];
  const lines = [
    "| compression | connections have | server | RSS / connection | RSS without the young generation / connection | heap used / connection | external / connection | heap + external / connection | target (RSS without the young generation, and heap + external) |",
    "|---|---|---|---:|---:|---:|---:|---:|---|",
  ];
  for (const compress of params.wsCompression) {
    for (const step of ["opened", "one message"] as const) {
      const group: MemoryRow[] = [];
      for (const def of servers.filter((s) => !(compress && s.noCompression === true))) {
        const mine = runs.filter((r) => r.server === def.id && r.compress === compress);
        const per = (of: (report: GcReport) => number): number =>
          median(mine.map((r) => (of(r.steps.find((s) => s.step === step)!.report) - of(r.baseline)) / r.connections));
        const heapUsed = per((m) => m.heapUsed);
        const external = per((m) => m.external);
        const rssOld = per((m) => m.rss - m.youngGeneration);
        group.push({ server: def.id, name: def.name, compress, step, rss: per((m) => m.rss), rssOld, heapUsed, external, js: heapUsed + external });
      }
      for (const r of group) {
        const t = MEMORY_TARGETS.find((t) => t.server === r.server);
        const b = t === undefined ? undefined : group.find((x) => x.server === t.versus);
        let target = "";
        if (t !== undefined && b !== undefined) {
          const rssRatio = b.rss > 0 ? r.rss / b.rss : null;
          const rssOldRatio = b.rssOld > 0 ? r.rssOld / b.rssOld : null;
          const jsRatio = b.js > 0 ? r.js / b.js : null;
          const pass = rssOldRatio === null || jsRatio === null ? null : rssOldRatio <= t.max && jsRatio <= t.max;
          targets.push({ server: r.server, versus: t.versus, compress, step, max: t.max, rssRatio, rssOldRatio, jsRatio, pass });
          const ratio = (x: number | null): string => (x === null ? "–" : `${x.toFixed(2)}×`);
          target = `≤ ws: RSS without the young generation ${ratio(rssOldRatio)}, heap + external ${ratio(jsRatio)} ${pass === null ? "n/a" : pass ? "PASS" : "MISS"} (whole RSS ${ratio(rssRatio)})`;
        }
        lines.push(
          `| ${compress ? "permessage-deflate" : "none"} | ${step === "opened" ? "opened" : "echoed one 32-byte message"} | ${r.name} | ${fmtInt(r.rss)} B | ${fmtInt(r.rssOld)} B | ${fmtInt(r.heapUsed)} B | ${fmtInt(r.external)} B | ${fmtInt(r.js)} B | ${target} |`,
        );
      }
      rows.push(...group);
    }
  }
  const note = params.memSnapshot ? "\n\n(BENCH_MEM_SNAPSHOT=1: the heap snapshots taken before the baseline and after opening use memory of their own, so the RSS columns are not meaningful in this run; the heap columns are.)" : "";
  return { markdown: `### Memory per idle connection (${fmtInt(params.memConnections)} open; after GC, minus the baseline)\n\n${lines.join("\n")}${note}`, rows, targets };
}

// ------------------------------------------------------------------ profile

/**
 * `npm run bench -- profile-ws`: CPU profiles of WebSocket echo servers
 * (typhoon's by default) under the load of each size × depth × compression,
 * as `profile` does for the HTTP servers: the server bundled with esbuild,
 * run under `--cpu-prof` (Node or Bun), only the measured window counted.
 */
export async function runWsProfile(params: Params, ids: string[], resultsDir: string): Promise<Record<string, unknown>> {
  const { servers } = selectWsServers(ids);
  const dir = join(resultsDir, "profiles");
  mkdirSync(dir, { recursive: true });
  console.log(`\n## CPU profiles of WebSocket echo (--cpu-prof, sampled every 100 µs; only the ${params.duration} s measured window counts)\n`);
  const summaries: Record<string, ProfileSummary> = {};
  const md: string[] = [];
  for (const def of servers) {
    const runtime = def.command[0];
    const script = def.command[def.command.length - 1]!;
    if ((runtime !== NODE && runtime !== BUN) || !script.endsWith(".ts")) {
      console.warn(`bench: cannot profile ${def.name}: it is not a TypeScript file run by Node or Bun`);
      continue;
    }
    const bundle = await bundleServer(script, dir, def.id);
    const map = new SourceMap(bundle.map);
    for (const compress of params.wsCompression) {
      if (compress && def.noCompression === true) continue;
      for (const size of params.wsSizes) {
        for (const depth of params.wsDepths) {
          const name = `${def.id}-${compress ? "deflate" : "plain"}-${size}-x${depth}`;
          const runDir = join(dir, name);
          rmSync(runDir, { recursive: true, force: true });
          mkdirSync(runDir, { recursive: true });
          const profiled: WsServerDef = { ...def, command: [runtime, "--cpu-prof", `--cpu-prof-dir=${runDir}`, "--cpu-prof-interval=100", bundle.file] };
          const server = await startWsServer(profiled, params.serverCpu, compress);
          let result: WsLoadResult;
          try {
            result = await runWsLoad(loadOptions(params, server, size, depth, compress));
          } finally {
            const code = await stopChild(server.child, 15_000);
            if (code !== 0) console.warn(`bench: ${def.id} exited with ${code}; its profile may be missing`);
          }
          const summary = mainThreadProfile(runDir, result.window, map);
          summaries[name] = summary;
          const text = profileMarkdown(
            `${def.name}, ${compress ? "permessage-deflate" : "no compression"}, ${fmtSize(size)} × ${depth} in flight: ${fmtInt(result.rate)} msg/s under the profiler (server CPU ${pct(result.serverCpu)}, client ${pct(result.clientCpu)})`,
            summary,
          );
          md.push(text);
          console.log(`${text}\n`);
        }
      }
    }
  }
  return { summaries, markdown: md.join("\n\n") };
}
