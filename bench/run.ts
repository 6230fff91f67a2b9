/**
 * `npm run bench`: typhoon against `node:http`, `Bun.serve` and raw
 * ceilings, each server in its own process pinned to one CPU and wrk pinned
 * to the other, servers interleaved over rounds; typhoon with two
 * processes; WebSocket echo and memory per idle connection against `ws`;
 * then the engine alone. See bench/README.md.
 *
 *   npm run bench                       # everything
 *   npm run bench -- http               # HTTP servers only (Node, Bun, 2 processes)
 *   npm run bench -- ws                 # WebSocket echo messages/s only
 *   npm run bench -- memory             # memory per idle WebSocket connection only
 *   npm run bench -- engine             # the engine only
 *   npm run bench -- profile            # CPU profiles of typhoon's servers under load
 *   npm run bench -- http --only typhoon-bare,node-http --scenario plain
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import { join } from "node:path";
import process from "node:process";
import {
  BUN,
  BUNDLES,
  GROUPS,
  NODE,
  RESULTS,
  ROOT,
  SCENARIOS,
  SERVERS,
  TARGETS,
  TSX,
  WS_SERVERS,
  bunAvailable,
  paramsFromEnv,
  type GroupDef,
  type Params,
  type ScenarioDef,
  type ServerDef,
} from "./config";
import { checkServer, type ParsedResponse } from "./lib/check";
import { bundleServer, runnableCommand } from "./lib/bundle";
import { clocksNowUs, mainThreadProfile, profileMarkdown, type ProfileSummary, type ProfileWindow } from "./lib/profile";
import { SourceMap } from "./lib/sourcemap";
import { freePort, indent, sleep, spawnPinned, stopChild, waitForPort, type Child } from "./lib/proc";
import { errorSummary, runWrk, type WrkResult } from "./lib/wrk";
import { runMemory, runWs, runWsProfile } from "./lib/ws-bench";
import { engineTable, type EngineResult } from "./engine";
import { disturbance as cpuDisturbance, fmtInt, median, whyDisturbed as disturbedBecause } from "./lib/format";

const HOST = "127.0.0.1";


// ------------------------------------------------------------------ options

type Mode = "all" | "http" | "ws" | "memory" | "engine" | "profile" | "profile-ws";
const MODES: readonly Mode[] = ["all", "http", "ws", "memory", "engine", "profile", "profile-ws"];

interface Options {
  mode: Mode;
  only: string[] | null;
  scenarios: string[] | null;
}

const USAGE = `Usage: npm run bench [-- [${MODES.join("|")}] [--only id,...] [--scenario id,...]]

  all         everything below but the profiles (default)
  http        the HTTP servers: Node, Bun, two processes
  ws          WebSocket echo messages/s, typhoon against ws
  memory      memory per idle WebSocket connection, typhoon against ws
  engine      the sans-I/O engine only (no sockets)
  profile     CPU profiles of typhoon's HTTP servers under load (bench/results/profiles/)
  profile-ws  CPU profiles of typhoon's WebSocket echo under load

  --only      servers: ${SERVERS.map((s) => s.id).join(", ")};
              WebSocket servers: ${WS_SERVERS.map((s) => s.id).join(", ")}
  --scenario  scenarios: ${SCENARIOS.map((s) => s.id).join(", ")}

Environment: BENCH_DURATION (s, default 5), BENCH_WARMUP (s, 2), BENCH_ROUNDS (3),
BENCH_CONNECTIONS (64), BENCH_THREADS (1), BENCH_SERVER_CPU (0), BENCH_CLIENT_CPU (1),
BENCH_ENGINE_DURATION (s, 2), BENCH_MAX_OTHERS (CPUs, 0.1), BENCH_RETRIES (2), BENCH_BUN (path);
WebSocket: BENCH_WS_SIZES (32,16384), BENCH_WS_DEPTHS (1,16), BENCH_WS_COMPRESSION (off,on),
BENCH_WS_CONNECTIONS (64), BENCH_MEM_CONNECTIONS (10000), BENCH_MEM_IDLE (s, 3), BENCH_MEM_ROUNDS (1).`;

function parseArgs(argv: string[]): Options {
  const o: Options = { mode: "all", only: null, scenarios: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = a.includes("=") ? a.slice(a.indexOf("=") + 1) : argv[++i];
      if (v === undefined || v === "") fail(`${a} needs a value\n\n${USAGE}`);
      return v;
    };
    if ((MODES as readonly string[]).includes(a)) o.mode = a as Mode;
    else if (a === "--only" || a.startsWith("--only=")) o.only = value().split(",");
    else if (a === "--scenario" || a.startsWith("--scenario=")) o.scenarios = value().split(",");
    else if (a === "-h" || a === "--help") {
      console.log(USAGE);
      process.exit(0);
    } else fail(`Unknown argument ${JSON.stringify(a)}\n\n${USAGE}`);
  }
  for (const id of o.only ?? []) {
    if (!SERVERS.some((s) => s.id === id) && !WS_SERVERS.some((s) => s.id === id)) {
      fail(`Unknown server ${JSON.stringify(id)}; known: ${[...SERVERS, ...WS_SERVERS].map((s) => s.id).join(", ")}`);
    }
  }
  for (const id of o.scenarios ?? []) if (!SCENARIOS.some((s) => s.id === id)) fail(`Unknown scenario ${JSON.stringify(id)}; known: ${SCENARIOS.map((s) => s.id).join(", ")}`);
  return o;
}

function fail(message: string): never {
  console.error(`bench: ${message}`);
  process.exit(1);
}

// --------------------------------------------------------------- preflight

function preflight(params: Params): void {
  const taskset = spawnSync("taskset", ["-c", params.serverCpu, "true"], { encoding: "utf8" });
  if (taskset.error !== undefined) fail("taskset is missing: install util-linux (apt-get install -y util-linux)");
  if (taskset.status !== 0) fail(`taskset cannot pin to CPU ${params.serverCpu}: ${taskset.stderr.trim()}`);
  const client = spawnSync("taskset", ["-c", params.clientCpu, "true"], { encoding: "utf8" });
  if (client.status !== 0) fail(`taskset cannot pin to CPU ${params.clientCpu}: ${client.stderr.trim()} (set BENCH_CLIENT_CPU)`);
  const wrk = spawnSync("wrk", ["-v"], { encoding: "utf8" });
  if (wrk.error !== undefined) fail("wrk is missing: install it with `apt-get install -y wrk`");
  if (params.serverCpu === params.clientCpu) console.warn(`bench: warning: server and wrk share CPU ${params.serverCpu}`);
}

function wrkVersion(): string {
  const r = spawnSync("wrk", ["-v"], { encoding: "utf8" });
  return `${r.stdout}${r.stderr}`.split("\n")[0]!.trim();
}

/** Share of all CPUs busy over `ms`, from /proc/stat. */
async function machineBusy(ms = 1000): Promise<number> {
  const read = (): number[] => readFileSync("/proc/stat", "latin1").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const a = read();
  await sleep(ms);
  const b = read();
  const d = b.map((v, i) => v - a[i]!);
  const total = d.reduce((x, y) => x + y, 0);
  const idle = d[3]! + (d[4] ?? 0);
  return total === 0 ? 0 : 1 - idle / total;
}

/** The commit measured, and the files under src/ that differ from it (someone may be editing them). */
function gitState(): { commit: string; dirty: string[] } {
  const head = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" });
  const status = spawnSync("git", ["status", "--porcelain", "--", "src"], { cwd: ROOT, encoding: "utf8" });
  return {
    commit: head.status === 0 ? head.stdout.trim() : "unknown",
    dirty: status.status === 0 ? status.stdout.split("\n").filter((l) => l.trim() !== "").map((l) => l.slice(3)) : [],
  };
}

async function machineInfo(): Promise<Record<string, unknown>> {
  const busy = await machineBusy();
  const info = {
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    kernel: os.release(),
    wrk: wrkVersion(),
    loadavg: os.loadavg().map((l) => Number(l.toFixed(2))),
    busyBeforeStart: Number(busy.toFixed(3)),
    git: gitState(),
  };
  console.log(`Machine: ${info.cpus} CPUs (${info.cpuModel}), Node ${info.node}, ${info.wrk}`);
  console.log(`typhoon at ${info.git.commit}${info.git.dirty.length > 0 ? ` with uncommitted changes in ${info.git.dirty.join(", ")}` : ""}`);
  console.log(`Load average ${info.loadavg.join(" ")}; CPU busy in the last second: ${(busy * 100).toFixed(0)}%`);
  if (busy > 0.1) console.warn(`bench: warning: the machine is busy (${(busy * 100).toFixed(0)}% CPU before starting); figures will be noisy`);
  return info;
}

// ------------------------------------------------------------------ servers

function selectServers(o: Options): { servers: ServerDef[]; skipped: Array<{ id: string; reason: string }> } {
  const chosen = o.only === null ? SERVERS.filter((s) => !s.optional) : SERVERS.filter((s) => o.only!.includes(s.id));
  const servers: ServerDef[] = [];
  const skipped: Array<{ id: string; reason: string }> = [];
  for (const s of chosen) {
    const reason = s.unavailable?.() ?? null;
    if (reason === null) servers.push(s);
    else {
      skipped.push({ id: s.id, reason });
      console.warn(`bench: skipping ${s.name}: ${reason}`);
    }
  }
  if (servers.length === 0) fail("no server to measure");
  return { servers, skipped };
}

interface Running {
  child: Child;
  port: number;
}

/** The CPUs a server runs on, and those wrk runs on (see `ServerDef.placement`). */
function placement(def: ServerDef, params: Params): { server: string; client: string } {
  if (def.placement === "spread") {
    const both = `${params.serverCpu},${params.clientCpu}`;
    return { server: both, client: both };
  }
  return { server: params.serverCpu, client: params.clientCpu };
}

async function startServer(def: ServerDef, params: Params, given?: readonly string[]): Promise<Running> {
  const command = given ?? (await runnableCommand(def.command, BUNDLES));
  const port = await freePort(HOST);
  const child = spawnPinned(placement(def, params).server, command, { ...def.env, PORT: String(port), HOST, BENCH_EXIT_WITH_STDIN: "1" });
  try {
    await waitForPort(child, HOST, port);
  } catch (error) {
    await stopChild(child, 1000);
    throw new Error(`Cannot start ${def.name} (${command.join(" ")}): ${(error as Error).message}`);
  }
  return { child, port };
}

/** Asks the raw server how many requests it answered (its stdin protocol). */
function askCount(child: Child, timeoutMs = 2000): Promise<number | null> {
  return new Promise((resolve) => {
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      resolve(null);
    }, timeoutMs);
    child.onLine((line) => {
      if (done || !line.startsWith("count ")) return;
      done = true;
      clearTimeout(timer);
      resolve(Number(line.slice(6)));
    });
    child.process.stdin!.write("count\n");
  });
}

// --------------------------------------------------------------------- http

interface Run {
  round: number;
  scenario: string;
  server: string;
  result: WrkResult;
  /** For the raw server: requests it answered during the measured run, to check wrk's count. */
  serverCounted?: number;
  /** Measurements made (more than 1 when the machine disturbed the first). */
  attempts: number;
}

interface Row {
  server: string;
  name: string;
  rps: number;
  p99Ms: number;
  /** The ratio to the table's baseline (`versus`). */
  ratio: number | null;
  versus: string;
  rounds: number[];
  serverCpu: number;
  /** Per process, for a server of several (median over the rounds). */
  serverCpuByProcess: number[] | null;
  wrkCpu: number;
  othersCpu: number;
  disturbedRounds: number;
  responseBytes: number | null;
  errors: string | null;
}

interface TargetResult {
  scenario: string;
  server: string;
  versus: string;
  min: number;
  ratio: number | null;
  pass: boolean | null;
}

function disturbance(r: WrkResult): number {
  return cpuDisturbance(r.othersCpu, r.serverCpu, r.wrkCpu);
}

function whyDisturbed(r: WrkResult): string {
  return disturbedBecause(r.othersCpu, r.serverCpu, r.wrkCpu, "wrk");
}

function fmtMs(us: number): string {
  return Number.isFinite(us) ? (us / 1000).toFixed(2) : "–";
}

async function runHttp(params: Params, o: Options): Promise<Record<string, unknown>> {
  const { servers, skipped } = selectServers(o);
  const scenarios = SCENARIOS.filter((s) => o.scenarios === null || o.scenarios.includes(s.id));
  const bun = servers.some((s) => s.command[0] === BUN) ? `; Bun ${bunAvailable()}` : "";
  console.log(
    `\n## HTTP servers\n\nwrk -t${params.threads} -c${params.connections} -d${params.duration}s (warm-up ${params.warmup} s, not counted) on CPU ${params.clientCpu}; ` +
      `servers on CPU ${params.serverCpu} (servers marked "spread" and their wrk on CPUs ${params.serverCpu},${params.clientCpu}); Node ${process.version}${bun}; ` +
      `${params.rounds} rounds, servers interleaved: ${servers.map((s) => s.id).join(", ")}\n`,
  );
  const runs: Run[] = [];
  const samples = new Map<string, ParsedResponse>();
  for (let round = 1; round <= params.rounds; round++) {
    for (const def of servers) {
      const server = await startServer(def, params);
      try {
        const check = await checkServer(HOST, server.port, scenarios[0]?.path ?? "/");
        if (check.problems.length > 0) {
          throw new Error(`${def.name} does not answer correctly:\n${check.problems.map((p) => `  - ${p}`).join("\n")}`);
        }
        if (!samples.has(def.id)) samples.set(def.id, check.responses[0]!);
        for (const scenario of scenarios) {
          const cpus = placement(def, params);
          const wrk = { cpu: cpus.client, threads: params.threads, connections: params.connections, host: HOST, port: server.port, scenario, serverPid: server.child.pid, serverCpus: cpus.server };
          if (params.warmup > 0) await runWrk({ ...wrk, durationSec: params.warmup });
          const counting = def.countsRequests === true;
          let run: Run | null = null;
          for (let attempt = 0; attempt <= params.retries; attempt++) {
            const before = counting ? await askCount(server.child) : null;
            const result = await runWrk({ ...wrk, durationSec: params.duration });
            const after = counting ? await askCount(server.child) : null;
            const candidate: Run = { round, scenario: scenario.id, server: def.id, result, attempts: attempt + 1 };
            if (before !== null && after !== null) candidate.serverCounted = after - before;
            if (run === null || disturbance(result) < disturbance(run.result)) run = { ...candidate, attempts: attempt + 1 };
            else run.attempts = attempt + 1;
            if (disturbance(result) <= params.maxOthers) break;
            if (attempt < params.retries) {
              console.log(`round ${round}  ${scenario.id.padEnd(9)}  ${def.id.padEnd(18)} disturbed: ${whyDisturbed(result)} (${fmtInt(result.rps)} req/s); measuring again`);
              await sleep(2000);
            }
          }
          const chosen = run!;
          const result = chosen.result;
          runs.push(chosen);
          const errors = errorSummary(result.errors);
          console.log(
            `round ${round}  ${scenario.id.padEnd(9)}  ${def.id.padEnd(18)} ${fmtInt(result.rps).padStart(9)} req/s  p99 ${fmtMs(result.latencyUs.p99).padStart(6)} ms  ` +
              `server CPU ${(result.serverCpu * 100).toFixed(0)}%${result.serverCpuByProcess !== undefined ? ` (${result.serverCpuByProcess.map((c) => (c * 100).toFixed(0)).join("+")})` : ""}  wrk CPU ${(result.wrkCpu * 100).toFixed(0)}%  others ${(result.othersCpu * 100).toFixed(0)}%` +
              (disturbance(result) > params.maxOthers ? ` (DISTURBED: ${whyDisturbed(result)})` : "") +
              (chosen.serverCounted !== undefined ? `  (server answered ${fmtInt(chosen.serverCounted)}, wrk counted ${fmtInt(result.requests)})` : "") +
              (errors !== null ? `  ERRORS: ${errors}` : ""),
          );
          if (result.errors.status > 0 || result.requests === 0) {
            throw new Error(`${def.name} failed under load in ${scenario.id}: ${errors ?? "no responses"}. Its output:\n${indent(server.child.output())}`);
          }
        }
      } finally {
        await stopChild(server.child);
      }
    }
  }

  // Summaries: one table per group and scenario, targets over all rows.
  const tables: Record<string, Record<string, Row[]>> = {};
  const targetResults: TargetResult[] = [];
  const out: string[] = [];
  const rowsByScenario = new Map<string, Map<string, Row>>();
  for (const scenario of scenarios) {
    const all = new Map<string, Row>();
    for (const def of servers) {
      const mine = runs.filter((r) => r.scenario === scenario.id && r.server === def.id);
      const errs = mine.map((r) => errorSummary(r.result.errors)).filter((e) => e !== null);
      const byProcess = mine.map((r) => r.result.serverCpuByProcess).filter((c) => c !== undefined);
      all.set(def.id, {
        server: def.id,
        name: def.name,
        rps: median(mine.map((r) => r.result.rps)),
        p99Ms: median(mine.map((r) => r.result.latencyUs.p99)) / 1000,
        ratio: null,
        versus: "",
        rounds: mine.map((r) => r.result.rps),
        serverCpu: median(mine.map((r) => r.result.serverCpu)),
        serverCpuByProcess: byProcess.length === 0 ? null : byProcess[0]!.map((_, i) => median(byProcess.map((c) => c[i] ?? NaN))),
        wrkCpu: median(mine.map((r) => r.result.wrkCpu)),
        othersCpu: median(mine.map((r) => r.result.othersCpu)),
        disturbedRounds: mine.filter((r) => disturbance(r.result) > params.maxOthers).length,
        responseBytes: samples.get(def.id)?.size ?? null,
        errors: errs.length > 0 ? errs.join("; ") : null,
      });
    }
    rowsByScenario.set(scenario.id, all);
    for (const t of TARGETS.filter((t) => t.scenario === scenario.id)) {
      const a = all.get(t.server);
      const b = all.get(t.versus);
      if (a === undefined) continue;
      const ratio = b !== undefined && b.rps > 0 ? a.rps / b.rps : null;
      targetResults.push({ ...t, ratio, pass: ratio === null ? null : ratio >= t.min });
    }
  }
  for (const group of GROUPS) {
    const members = servers.filter((s) => (s.group ?? "node") === group.id);
    if (members.length === 0) continue;
    out.push(`### ${group.title}${group.note !== undefined ? `\n\n${group.note}` : ""}`);
    tables[group.id] = {};
    for (const scenario of scenarios) {
      const all = rowsByScenario.get(scenario.id)!;
      const base = all.get(group.baseline);
      const ids = [...members.map((s) => s.id), ...(group.references ?? []).filter((id) => !members.some((m) => m.id === id))];
      const rows = ids
        .map((id) => all.get(id))
        .filter((r) => r !== undefined)
        .map((r) => ({ ...r, versus: group.baseline, ratio: base !== undefined && base.rps > 0 ? r.rps / base.rps : null }));
      tables[group.id]![scenario.id] = rows;
      const memberIds = new Set(members.map((m) => m.id));
      out.push(scenarioTable(group, scenario, rows, memberIds, targetResults.filter((t) => t.scenario === scenario.id && memberIds.has(t.server)), params));
    }
  }
  out.push(responsesSection(servers, samples));
  const markdown = out.join("\n\n");
  console.log(`\n${markdown}`);
  if (skipped.length > 0) console.log(`\nSkipped: ${skipped.map((s) => `${s.id} (${s.reason})`).join("; ")}`);
  const pipelinedRaw = runs.filter((r) => r.serverCounted !== undefined && r.scenario !== "plain");
  if (pipelinedRaw.length > 0) {
    const worst = Math.max(...pipelinedRaw.map((r) => Math.abs(r.serverCounted! - r.result.requests) / r.result.requests));
    console.log(`\nCheck of wrk's count: in the pipelined runs the raw server answered within ${(worst * 100).toFixed(2)}% of the responses wrk counted, so wrk's req/s are responses/s.`);
  }
  return {
    params,
    servers: servers.map(({ id, name, command, env, group, placement }) => ({ id, name, command, env, group: group ?? "node", placement: placement ?? "pinned" })),
    skipped,
    runs,
    tables,
    targets: targetResults,
    markdown,
  };
}

function serverName(id: string): string {
  return SERVERS.find((s) => s.id === id)?.name ?? id;
}

function scenarioTable(group: GroupDef, scenario: ScenarioDef, rows: Row[], members: ReadonlySet<string>, targets: TargetResult[], params: Params): string {
  const lines = [
    `#### ${scenario.name}${scenario.depth > 1 ? ` (p99 is per batch of ${scenario.depth})` : ""}`,
    "",
    `| server | req/s (median) | p99 ms | × ${serverName(group.baseline)} | target | rounds req/s | server CPU | wrk CPU | others CPU |`,
    "|---|---:|---:|---:|---|---|---:|---:|---:|",
  ];
  for (const r of rows) {
    const mine = targets.filter((t) => t.server === r.server);
    const target = mine
      .map((t) => {
        const versus = serverName(t.versus);
        const verdict = t.pass === null ? "n/a" : t.pass ? "PASS" : "MISS";
        return `≥${t.min}× ${versus}: ${t.ratio === null ? "–" : `${t.ratio.toFixed(2)}×`} ${verdict}`;
      })
      .join("; ");
    const byProcess = r.serverCpuByProcess !== null ? ` (${r.serverCpuByProcess.map((c) => (c * 100).toFixed(0)).join("+")})` : "";
    lines.push(
      `| ${r.name}${members.has(r.server) ? "" : " (from its own table)"} | ${fmtInt(r.rps)} | ${Number.isFinite(r.p99Ms) ? r.p99Ms.toFixed(2) : "–"} | ${r.ratio === null ? "–" : `${r.ratio.toFixed(2)}×`} | ${target} | ${r.rounds.map(fmtInt).join(" / ")} | ${(r.serverCpu * 100).toFixed(0)}%${byProcess} | ${(r.wrkCpu * 100).toFixed(0)}% | ${(r.othersCpu * 100).toFixed(0)}%${r.disturbedRounds > 0 ? ` ⚠ ${r.disturbedRounds}/${r.rounds.length}` : ""} |`,
    );
  }
  if (rows.some((r) => r.disturbedRounds > 0)) {
    lines.push(
      "",
      `⚠ = rounds still disturbed after ${params.retries} retries: other tasks took more than ${(params.maxOthers * 100).toFixed(0)}% of a CPU on the benchmark CPUs, ` +
        "or neither the server nor wrk kept its CPU busy (≥90%); those figures are likely low.",
    );
  }
  const missingTargets = TARGETS.filter(
    (t) => t.scenario === scenario.id && (SERVERS.find((s) => s.id === t.server)?.group ?? "node") === group.id && !targets.some((x) => x.server === t.server && x.versus === t.versus && x.ratio !== null),
  );
  for (const t of missingTargets) lines.push(`\n(target ${t.server} ≥${t.min}× ${t.versus} not measured)`);
  return lines.join("\n");
}

function responsesSection(servers: ServerDef[], samples: Map<string, ParsedResponse>): string {
  const lines = ["### What each server answered (first response of the check)", ""];
  for (const def of servers) {
    const r = samples.get(def.id);
    if (r === undefined) continue;
    lines.push(`- ${def.name}, ${r.size} bytes: \`${r.head.split("\r\n").join(" ⏎ ")}\``);
  }
  return lines.join("\n");
}

// ------------------------------------------------------------------- engine

async function runEngine(params: Params): Promise<Record<string, unknown>> {
  console.log(`\n## Engine alone (sans-I/O ServerConnection, no sockets), pinned to CPU ${params.serverCpu}, ${params.engineDuration} s × 3 rounds per case\n`);
  const out: Record<string, unknown> = {};
  const runtimes: Array<{ id: string; name: string; command: string[] }> = [
    { id: "node", name: `Node ${process.version}`, command: await runnableCommand([NODE, ...TSX, "bench/engine.ts"], BUNDLES) },
  ];
  if (bunAvailable() !== null) runtimes.push({ id: "bun", name: `Bun ${bunAvailable()}`, command: [BUN, "bench/engine.ts"] });
  for (const runtime of runtimes) {
    const child = spawnPinned(params.serverCpu, [...runtime.command, "--json"], { BENCH_ENGINE_DURATION: String(params.engineDuration) });
    let json: string | null = null;
    child.onLine((line) => {
      if (line.startsWith("BENCH_JSON ")) json = line.slice(11);
    });
    const code = await child.exited;
    if (code !== 0 || json === null) throw new Error(`The engine benchmark failed on ${runtime.name} (exit ${code}):\n${indent(child.output())}`);
    const data = JSON.parse(json) as { simd: boolean; node: string; results: EngineResult[] };
    console.log(`### ${runtime.name}: llhttp ${data.simd ? "SIMD" : "plain"} wasm\n`);
    console.log(`${engineTable(data.results)}\n`);
    out[runtime.id] = data;
  }
  return out;
}

// ------------------------------------------------------------------ profile

async function runProfile(params: Params, o: Options): Promise<Record<string, unknown>> {
  const ids = o.only ?? ["typhoon-bare", "typhoon-app"];
  const { servers } = selectServers({ ...o, only: ids });
  const scenarios = SCENARIOS.filter((s) => o.scenarios === null || o.scenarios.includes(s.id));
  const dir = join(RESULTS, "profiles");
  mkdirSync(dir, { recursive: true });
  console.log(`\n## CPU profiles (node --cpu-prof, sampled every 100 µs; only the ${params.duration} s measured run counts)\n`);
  const summaries: Record<string, ProfileSummary> = {};
  const md: string[] = [];
  for (const def of servers) {
    const script = def.command[def.command.length - 1]!;
    const runtime = def.command[0];
    if ((runtime !== NODE && runtime !== BUN) || !script.endsWith(".ts") || def.env?.BENCH_PROCESSES !== undefined) {
      console.warn(`bench: cannot profile ${def.name}: it is not one TypeScript process run by Node or Bun`);
      continue;
    }
    const bundle = await bundleServer(script, dir, def.id);
    const map = new SourceMap(bundle.map);
    for (const scenario of scenarios) {
      const runDir = join(dir, `${def.id}-${scenario.id}`);
      rmSync(runDir, { recursive: true, force: true });
      mkdirSync(runDir, { recursive: true });
      // Both runtimes take the same flags; Bun writes the same format.
      const command = [runtime, "--cpu-prof", `--cpu-prof-dir=${runDir}`, "--cpu-prof-interval=100", bundle.file];
      const server = await startServer(def, params, command);
      let window: ProfileWindow;
      let result: WrkResult;
      try {
        const cpus = placement(def, params);
        const wrk = { cpu: cpus.client, threads: params.threads, connections: params.connections, host: HOST, port: server.port, scenario, serverPid: server.child.pid, serverCpus: cpus.server };
        if (params.warmup > 0) await runWrk({ ...wrk, durationSec: params.warmup });
        const start = clocksNowUs();
        result = await runWrk({ ...wrk, durationSec: params.duration });
        const end = clocksNowUs();
        window = { startUs: start.mono, endUs: end.mono, wallStartUs: start.wall, wallEndUs: end.wall };
      } finally {
        const code = await stopChild(server.child, 15_000);
        if (code !== 0) console.warn(`bench: ${def.id} exited with ${code}; its profile may be missing`);
      }
      const summary = mainThreadProfile(runDir, window!, map);
      summaries[`${def.id}/${scenario.id}`] = summary;
      const text = profileMarkdown(`${def.name}, ${scenario.name}: ${fmtInt(result!.rps)} req/s under the profiler`, summary);
      md.push(text);
      console.log(`${text}\n`);
    }
  }
  return { summaries, markdown: md.join("\n\n") };
}


// --------------------------------------------------------------------- main

/** The WebSocket servers named with --only (null: the default ones). */
function wsOnly(o: Options): string[] | null {
  if (o.only === null) return null;
  return o.only.filter((id) => WS_SERVERS.some((s) => s.id === id));
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const params = paramsFromEnv();
  if (o.mode !== "engine") preflight(params);
  else if (spawnSync("taskset", ["-V"]).error !== undefined) fail("taskset is missing: install util-linux");
  const machine = await machineInfo();
  const report: Record<string, unknown> = { date: new Date().toISOString(), mode: o.mode, machine, params };
  // With --only, "all" runs the parts that have a server named.
  const names = (list: ReadonlyArray<{ id: string }>): boolean => o.only === null || list.some((s) => o.only!.includes(s.id));
  // The WebSocket load comes from Bun's client.
  const bun = bunAvailable() !== null;
  if (!bun && (o.mode === "ws" || o.mode === "memory" || o.mode === "profile-ws")) fail(`Bun cannot be run (${BUN}): the WebSocket load generator needs it (npm install, or set BENCH_BUN)`);
  if (!bun && o.mode === "all") console.warn(`bench: skipping the WebSocket benchmarks: Bun cannot be run (${BUN})`);
  if (o.mode === "http" || (o.mode === "all" && names(SERVERS))) report.http = await runHttp(params, o);
  if (o.mode === "ws" || (o.mode === "all" && bun && names(WS_SERVERS))) report.ws = await runWs(params, wsOnly(o));
  if (o.mode === "memory" || (o.mode === "all" && bun && names(WS_SERVERS))) report.memory = await runMemory(params, wsOnly(o));
  if (o.mode === "all" || o.mode === "engine") report.engine = await runEngine(params);
  if (o.mode === "profile") report.profile = await runProfile(params, o);
  if (o.mode === "profile-ws") report.profile = await runWsProfile(params, wsOnly(o) ?? ["typhoon-ws"], RESULTS);
  mkdirSync(RESULTS, { recursive: true });
  const file = join(RESULTS, o.mode.startsWith("profile") ? `${o.mode}-latest.json` : "latest.json");
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nResults written to ${file.replace(`${ROOT}/`, "")}`);
}

main().catch((error: unknown) => {
  console.error(`\nbench: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
