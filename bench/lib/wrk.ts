/**
 * Runs wrk pinned to the client CPU and reads the summary its Lua `done`
 * hook prints (a `BENCH_JSON {...}` line), so that nothing depends on wrk's
 * human output.
 *
 * @module
 */
import type { ScenarioDef } from "../config";
import { cpuBusySeconds, indent, parseCpuList, processTree, spawnPinned, watchCpu } from "./proc";

/** What one wrk run measured. */
export interface WrkResult {
  /** Responses per second (wrk counts one request per response it parses). */
  rps: number;
  requests: number;
  durationSec: number;
  bytes: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  /** Latency in microseconds; with pipelining, per batch of `depth` requests. */
  latencyUs: { mean: number; stdev: number; max: number; p50: number; p90: number; p99: number };
  /** Share of one CPU the server used during the run (1 = a whole core), summed over its processes. */
  serverCpu: number;
  /** The same per process of the server (its first process, then the workers it forked), when it has several. */
  serverCpuByProcess?: number[];
  /** Share of one CPU wrk used. */
  wrkCpu: number;
  /**
   * CPU (in CPUs) that other tasks took on the server's and wrk's CPUs during
   * the run: anything clearly above 0 means the machine was not quiet.
   */
  othersCpu: number;
}

export interface WrkOptions {
  cpu: string;
  threads: number;
  connections: number;
  durationSec: number;
  host: string;
  port: number;
  scenario: ScenarioDef;
  /** The server's pid, to measure its CPU use. */
  serverPid: number;
  /** The CPUs the server is pinned to (to measure what else ran there). */
  serverCpus: string;
}

export async function runWrk(o: WrkOptions): Promise<WrkResult> {
  const args = [
    "wrk",
    `-t${o.threads}`,
    `-c${o.connections}`,
    `-d${o.durationSec}s`,
    "--timeout",
    "5s",
    "-s",
    o.scenario.script,
    `http://${o.host}:${o.port}${o.scenario.path}`,
  ];
  if (o.scenario.scriptArgs.length > 0) args.push("--", ...o.scenario.scriptArgs);
  const wrk = spawnPinned(o.cpu, args);
  let json: string | null = null;
  wrk.onLine((line) => {
    if (line.startsWith("BENCH_JSON ")) json = line.slice("BENCH_JSON ".length);
  });
  const cpus = [...new Set([...parseCpuList(o.cpu), ...parseCpuList(o.serverCpus)])];
  const busyStart = cpuBusySeconds(cpus);
  const t0 = performance.now();
  // A server of several processes: its workers are running by now.
  const serverPids = processTree(o.serverPid);
  const cpu = watchCpu(() => [...serverPids, wrk.pid]);
  const code = await wrk.exited;
  const shares = cpu.stop();
  const wrkCpu = shares.pop()!;
  const serverCpu = shares.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  const busy = (cpuBusySeconds(cpus) - busyStart) / ((performance.now() - t0) / 1000);
  const othersCpu = Math.max(0, busy - (serverCpu || 0) - (wrkCpu || 0));
  if (code !== 0 || json === null) {
    throw new Error(`wrk failed (exit ${code}): ${args.join(" ")}\n${indent(wrk.output())}`);
  }
  const s = JSON.parse(json) as {
    requests: number;
    duration_us: number;
    bytes: number;
    errors: WrkResult["errors"];
    latency_us: WrkResult["latencyUs"];
  };
  const durationSec = s.duration_us / 1e6;
  // wrk corrects for coordinated omission by adding samples between its
  // expected interval and each long latency; those below the smallest
  // recorded latency are counted but never reached by percentile(), which
  // then returns 0. It happens with pipelining (wrk's expected interval is
  // per response, latencies are per batch): report it as unknown (no
  // latency is 0 µs).
  if (s.latency_us.p99 === 0) s.latency_us.p99 = NaN;
  return {
    rps: s.requests / durationSec,
    requests: s.requests,
    durationSec,
    bytes: s.bytes,
    errors: s.errors,
    latencyUs: s.latency_us,
    serverCpu,
    ...(shares.length > 1 ? { serverCpuByProcess: shares } : {}),
    wrkCpu,
    othersCpu,
  };
}

/** Errors worth a warning: anything but none. */
export function errorSummary(errors: WrkResult["errors"]): string | null {
  const parts = Object.entries(errors).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`);
  return parts.length === 0 ? null : parts.join(", ");
}
