/**
 * Child processes for the benchmark: spawned pinned to a CPU, tracked so
 * that every one of them dies with the runner (normal exit, error, Ctrl-C),
 * and watched for their CPU time.
 *
 * @module
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import * as net from "node:net";
import process from "node:process";
import { ROOT } from "../config";

const children = new Set<ChildProcess>();
let hooksInstalled = false;

function killAll(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
  }
  children.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", killAll);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      killAll();
      process.stderr.write(`\nbench: stopped by ${signal}\n`);
      process.exit(130);
    });
  }
}

/** A child with the tail of its output kept for error messages. */
export interface Child {
  readonly process: ChildProcess;
  readonly pid: number;
  /** The last few KiB of stdout and stderr. */
  output(): string;
  /** Resolves with the exit code (or signal name) when the child exits. */
  readonly exited: Promise<number | string>;
  /** Lines written on stdout, as they come. */
  onLine(listener: (line: string) => void): void;
}

const TAIL = 8 * 1024;

/** Spawns `command` pinned to `cpu` with taskset, from the repository root. */
export function spawnPinned(cpu: string, command: readonly string[], env: Record<string, string> = {}): Child {
  installHooks();
  const child = spawn("taskset", ["-c", cpu, ...command], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  if (child.pid === undefined) throw new Error(`Cannot start ${command.join(" ")}: spawn failed`);
  children.add(child);
  let tail = "";
  const keep = (data: Buffer): void => {
    tail = (tail + data.toString("utf8")).slice(-TAIL);
  };
  const lineListeners: Array<(line: string) => void> = [];
  let partial = "";
  child.stdout!.on("data", (data: Buffer) => {
    keep(data);
    partial += data.toString("utf8");
    let nl: number;
    while ((nl = partial.indexOf("\n")) !== -1) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      for (const l of lineListeners) l(line);
    }
  });
  child.stderr!.on("data", keep);
  child.stdin!.on("error", () => {});
  const exited = new Promise<number | string>((resolve) => {
    child.once("exit", (code, signal) => {
      children.delete(child);
      resolve(code ?? signal ?? "unknown");
    });
    child.once("error", (error) => {
      children.delete(child);
      tail += `\n${error.message}`;
      resolve("spawn error");
    });
  });
  return {
    process: child,
    pid: child.pid,
    output: () => tail,
    exited,
    onLine: (listener) => lineListeners.push(listener),
  };
}

/** Asks a child to stop (SIGTERM), then kills it if it has not exited after `graceMs`. */
export async function stopChild(child: Child, graceMs = 5000): Promise<number | string> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return child.exited;
  child.process.kill("SIGTERM");
  const timer = setTimeout(() => child.process.kill("SIGKILL"), graceMs);
  const code = await child.exited;
  clearTimeout(timer);
  return code;
}

/** A TCP port that was free a moment ago on `host`. */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("Cannot find a free port"))));
    });
  });
}

/** Resolves once `host:port` accepts a connection; rejects if the child exits or time runs out. */
export async function waitForPort(child: Child, host: string, port: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited: number | string | null = null;
  void child.exited.then((code) => (exited = code));
  for (;;) {
    if (exited !== null) {
      throw new Error(`The server exited (${exited}) before it listened on port ${port}. Its output:\n${indent(child.output())}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host, port });
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => {
        socket.destroy();
        resolve(false);
      });
    });
    if (ok) return;
    if (Date.now() > deadline) {
      throw new Error(`The server did not listen on port ${port} within ${timeoutMs / 1000} s. Its output:\n${indent(child.output())}`);
    }
    await sleep(50);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function indent(text: string): string {
  const t = text.trim();
  return t === "" ? "    (nothing)" : t.split("\n").map((l) => `    ${l}`).join("\n");
}

let clockTicks = 0;

/** CPU time (user + system) of a process, in seconds; null once it is gone. */
export function cpuSeconds(pid: number): number | null {
  if (clockTicks === 0) {
    const r = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
    clockTicks = Number(r.stdout) > 0 ? Number(r.stdout) : 100;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of stat, i.e. 12 and 13 after the name.
    return (Number(fields[11]) + Number(fields[12])) / clockTicks;
  } catch {
    return null;
  }
}

/**
 * Samples the CPU time of processes while something runs; `stop` gives the
 * share of one CPU each used between the first and the last sample.
 */
export function watchCpu(pids: () => number[], everyMs = 200): { stop(): number[] } {
  const first = new Map<number, { t: number; cpu: number }>();
  const last = new Map<number, { t: number; cpu: number }>();
  const sample = (): void => {
    const t = performance.now() / 1000;
    for (const pid of pids()) {
      const cpu = cpuSeconds(pid);
      if (cpu === null) continue;
      if (!first.has(pid)) first.set(pid, { t, cpu });
      last.set(pid, { t, cpu });
    }
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    stop(): number[] {
      clearInterval(timer);
      return pids().map((pid) => {
        const a = first.get(pid);
        const b = last.get(pid);
        if (a === undefined || b === undefined || b.t - a.t < 0.2) return NaN;
        return (b.cpu - a.cpu) / (b.t - a.t);
      });
    },
  };
}

/**
 * `pid` and its descendants (children, grandchildren...), from /proc: the
 * processes of a server that forks workers. `pid` comes first.
 */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync("/proc").filter((e) => /^\d+$/.test(e));
  } catch {
    return [pid];
  }
  for (const entry of entries) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "latin1");
    } catch {
      continue; // gone meanwhile
    }
    // The parent's pid is the second field after the command name.
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    const list = children.get(ppid);
    if (list === undefined) children.set(ppid, [Number(entry)]);
    else list.push(Number(entry));
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

/** CPU numbers of a taskset list such as `0`, `2,3` or `0-3`. */
export function parseCpuList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.split(",")) {
    const [a, b] = part.split("-").map((x) => Number(x.trim()));
    if (a === undefined || !Number.isInteger(a)) continue;
    const end = b !== undefined && Number.isInteger(b) ? b : a;
    for (let c = a; c <= end; c++) out.push(c);
  }
  return out;
}

/** Seconds the given CPUs spent running tasks (user, nice, system; not interrupts), from /proc/stat. */
export function cpuBusySeconds(cpus: number[]): number {
  if (clockTicks === 0) cpuSeconds(process.pid);
  let jiffies = 0;
  for (const line of readFileSync("/proc/stat", "latin1").split("\n")) {
    const m = /^cpu(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/.exec(line);
    if (m !== null && cpus.includes(Number(m[1]))) jiffies += Number(m[2]) + Number(m[3]) + Number(m[4]);
  }
  return jiffies / clockTicks;
}
