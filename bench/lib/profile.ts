/**
 * Reads a `.cpuprofile` (from `node --cpu-prof`, or `bun --cpu-prof`, which
 * writes the same format with wall-clock time stamps) and ranks where the
 * time went: self time per function, inclusive time of typhoon's own
 * functions, and a breakdown (typhoon, Node internals, llhttp wasm, GC,
 * native).
 *
 * @module
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../config";
import type { SourceMap } from "./sourcemap";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export type Category = "typhoon" | "bench" | "node" | "wasm" | "gc" | "native" | "other";

export interface FunctionTime {
  /** `file:function` (file relative to the repository for our code). */
  name: string;
  category: Category;
  /** Share of the busy time (idle excluded), in percent. */
  percent: number;
  ms: number;
}

export interface ProfileSummary {
  file: string;
  /** The window the samples were taken from, and whether it was narrowed to the measured run. */
  windowed: boolean;
  busyMs: number;
  idlePercent: number;
  categories: Record<Category, number>;
  self: FunctionTime[];
  typhoonSelf: FunctionTime[];
  typhoonInclusive: FunctionTime[];
}

function categorize(frame: CallFrame): Category {
  const { url, functionName } = frame;
  if (functionName === "(garbage collector)") return "gc";
  if (functionName === "(program)" || functionName === "(root)") return "native";
  if (url.startsWith("wasm://") || /^(wasm-function|\$?llhttp|\$?wasm)/.test(functionName) && url === "") return "wasm";
  if (url.includes("/src/")) return "typhoon";
  if (url.includes("/bench/")) return "bench";
  if (url.startsWith("node:") || url === "") return url === "" && functionName !== "" ? "native" : "node";
  return "other";
}

/**
 * Where a frame's code came from: through the bundle's source map when
 * there is one (file and 1-based line of the TypeScript), else as V8 says.
 */
function resolveFrame(frame: CallFrame, map: SourceMap | undefined): CallFrame {
  if (map === undefined || frame.lineNumber < 0 || !frame.url.startsWith("file://")) return frame;
  const pos = map.lookup(frame.lineNumber, frame.columnNumber);
  if (pos === null) return frame;
  return { functionName: frame.functionName, url: `file://${pos.file}`, lineNumber: pos.line, columnNumber: 0 };
}

function label(frame: CallFrame): string {
  const fn = frame.functionName || `(anonymous@${frame.lineNumber + 1})`;
  let file = frame.url;
  if (file.startsWith("file://")) file = file.slice(7);
  if (file.startsWith(`${ROOT}/`)) file = file.slice(ROOT.length + 1);
  else if (file.includes("/node_modules/")) file = file.slice(file.lastIndexOf("/node_modules/") + 1);
  if (file === "") return fn;
  return `${file}:${fn}`;
}

/**
 * A time window in microseconds on two clocks: CLOCK_MONOTONIC (what V8
 * stamps samples with on Linux: `process.hrtime`) and, optionally, the
 * wall clock (what Bun stamps them with: `Date.now() * 1000`).
 */
export interface ProfileWindow {
  startUs: number;
  endUs: number;
  wallStartUs?: number;
  wallEndUs?: number;
}

/** Now, on both clocks of {@link ProfileWindow}. */
export function clocksNowUs(): { mono: number; wall: number } {
  return { mono: Number(process.hrtime.bigint() / 1000n), wall: (performance.timeOrigin + performance.now()) * 1000 };
}

/** Of the profiles in `dir` (one per thread), the summary of the one that was busiest in the window. */
export function mainThreadProfile(dir: string, window: ProfileWindow, map: SourceMap): ProfileSummary {
  const files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"));
  if (files.length === 0) throw new Error(`No profile was written in ${dir}`);
  const summaries = files.map((f) => summarizeProfile(join(dir, f), window, map));
  summaries.sort((a, b) => b.busyMs - a.busyMs);
  return summaries[0]!;
}

/**
 * Summarizes a profile. With `window`, only samples inside it count (on
 * the clock the profile's time stamps are on: monotonic for V8, wall-clock
 * for Bun, told apart by their size).
 */
export function summarizeProfile(file: string, clocks?: ProfileWindow, map?: SourceMap, top = 20): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  // Microseconds since 1970 are ~1.8e15; since boot, far fewer.
  const wall = profile.startTime > 1e14;
  const window =
    clocks === undefined ? undefined : wall ? (clocks.wallStartUs === undefined ? undefined : { startUs: clocks.wallStartUs, endUs: clocks.wallEndUs! }) : clocks;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    node.callFrame = resolveFrame(node.callFrame, map);
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  // Time of each sample: the delta to the next sample (V8 attributes it so).
  const n = profile.samples.length;
  const stamps = new Array<number>(n);
  let t = profile.startTime;
  for (let i = 0; i < n; i++) {
    t += profile.timeDeltas[i]!;
    stamps[i] = t;
  }
  let windowed = false;
  let from = 0;
  let to = n;
  if (window !== undefined) {
    const a = stamps.findIndex((s) => s >= window.startUs);
    let b = n;
    for (let i = n - 1; i >= 0; i--) {
      if (stamps[i]! <= window.endUs) {
        b = i + 1;
        break;
      }
    }
    if (a !== -1 && b - a > 100) {
      from = a;
      to = b;
      windowed = true;
    }
  }
  const selfUs = new Map<number, number>();
  const inclusiveUs = new Map<string, number>();
  let idleUs = 0;
  let busyUs = 0;
  const categories: Record<Category, number> = { typhoon: 0, bench: 0, node: 0, wasm: 0, gc: 0, native: 0, other: 0 };
  for (let i = from; i < to; i++) {
    const dt = i + 1 < n ? stamps[i + 1]! - stamps[i]! : 0;
    const id = profile.samples[i]!;
    const node = byId.get(id)!;
    if (node.callFrame.functionName === "(idle)") {
      idleUs += dt;
      continue;
    }
    busyUs += dt;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
    categories[categorize(node.callFrame)] += dt;
    // Inclusive time of typhoon functions: once per function per sample.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)!.callFrame;
      if (categorize(frame) !== "typhoon") continue;
      const key = label(frame);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusiveUs.set(key, (inclusiveUs.get(key) ?? 0) + dt);
    }
  }
  const selfByName = new Map<string, { us: number; category: Category }>();
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    const key = label(frame);
    const entry = selfByName.get(key);
    if (entry === undefined) selfByName.set(key, { us, category: categorize(frame) });
    else entry.us += us;
  }
  const pct = (us: number): number => (busyUs === 0 ? 0 : (100 * us) / busyUs);
  const all = [...selfByName].map(([name, e]) => ({ name, category: e.category, percent: pct(e.us), ms: e.us / 1000 }));
  all.sort((a, b) => b.ms - a.ms);
  const inclusive = [...inclusiveUs].map(([name, us]) => ({ name, category: "typhoon" as Category, percent: pct(us), ms: us / 1000 }));
  inclusive.sort((a, b) => b.ms - a.ms);
  const cats = Object.fromEntries(Object.entries(categories).map(([k, us]) => [k, pct(us)])) as Record<Category, number>;
  return {
    file,
    windowed,
    busyMs: busyUs / 1000,
    idlePercent: busyUs + idleUs === 0 ? 0 : (100 * idleUs) / (busyUs + idleUs),
    categories: cats,
    self: all.slice(0, top),
    typhoonSelf: all.filter((f) => f.category === "typhoon").slice(0, top),
    typhoonInclusive: inclusive.slice(0, top),
  };
}

export function profileMarkdown(title: string, s: ProfileSummary): string {
  const c = s.categories;
  const out = [
    `#### ${title}`,
    "",
    `${s.file.replace(`${ROOT}/`, "")}: ${(s.busyMs / 1000).toFixed(2)} s busy${s.windowed ? " in the measured run" : " (whole process: the measured window could not be found)"}, idle ${s.idlePercent.toFixed(1)}%.`,
    `Busy time: typhoon ${c.typhoon.toFixed(1)}%, Node/JS internals ${c.node.toFixed(1)}%, native/program ${c.native.toFixed(1)}%, GC ${c.gc.toFixed(1)}%, llhttp wasm ${c.wasm.toFixed(1)}%, bench ${c.bench.toFixed(1)}%, other ${c.other.toFixed(1)}%.`,
    "",
    "| self % | function (all code) | | self % | typhoon function | | incl. % | typhoon function (inclusive) |",
    "|---:|---|---|---:|---|---|---:|---|",
  ];
  const rows = Math.max(s.self.length, s.typhoonSelf.length, s.typhoonInclusive.length);
  for (let i = 0; i < rows; i++) {
    const a = s.self[i];
    const b = s.typhoonSelf[i];
    const d = s.typhoonInclusive[i];
    out.push(
      `| ${a ? a.percent.toFixed(1) : ""} | ${a ? `\`${a.name}\`` : ""} | | ${b ? b.percent.toFixed(1) : ""} | ${b ? `\`${b.name}\`` : ""} | | ${d ? d.percent.toFixed(1) : ""} | ${d ? `\`${d.name}\`` : ""} |`,
    );
  }
  return out.join("\n");
}
