/**
 * What grows with the connections, from two V8 heap snapshots (before and
 * after opening them): objects grouped by kind and constructor, the
 * difference in count and self size divided by the number of connections.
 * Used by the memory benchmark with `BENCH_MEM_SNAPSHOT=1`.
 *
 * @module
 */
import { readFileSync } from "node:fs";

interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** One group of heap objects that grew: per connection. */
export interface HeapGrowth {
  kind: string;
  name: string;
  /** Objects per connection. */
  count: number;
  /** Self bytes per connection. */
  bytes: number;
}

function groups(file: string): Map<string, { count: number; bytes: number }> {
  const s = JSON.parse(readFileSync(file, "utf8")) as HeapSnapshot;
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const width = fields.length;
  const ti = fields.indexOf("type");
  const ni = fields.indexOf("name");
  const si = fields.indexOf("self_size");
  const out = new Map<string, { count: number; bytes: number }>();
  const nodes = s.nodes;
  for (let i = 0; i < nodes.length; i += width) {
    const kind = types[nodes[i + ti]!]!;
    // Strings and numbers by kind only: their "name" is their value.
    const name = kind === "object" || kind === "closure" || kind === "native" || kind === "hidden" ? s.strings[nodes[i + ni]!]! : "";
    const key = `${kind}\u0000${name}`;
    const g = out.get(key);
    if (g === undefined) out.set(key, { count: 1, bytes: nodes[i + si]! });
    else {
      g.count++;
      g.bytes += nodes[i + si]!;
    }
  }
  return out;
}

/** The groups that grew most between `before` and `after`, per connection. */
export function heapGrowth(before: string, after: string, connections: number, top = 40): HeapGrowth[] {
  const a = groups(before);
  const b = groups(after);
  const out: HeapGrowth[] = [];
  for (const [key, g] of b) {
    const base = a.get(key) ?? { count: 0, bytes: 0 };
    const bytes = (g.bytes - base.bytes) / connections;
    if (bytes <= 0) continue;
    const [kind, name] = key.split("\u0000") as [string, string];
    out.push({ kind, name, count: (g.count - base.count) / connections, bytes });
  }
  out.sort((x, y) => y.bytes - x.bytes);
  return out.slice(0, top);
}

/** A markdown table of {@link heapGrowth}. */
export function heapGrowthTable(title: string, rows: HeapGrowth[]): string {
  const total = rows.reduce((sum, r) => sum + r.bytes, 0);
  const lines = [`#### ${title}`, "", "| kind | constructor / name | objects per connection | bytes per connection |", "|---|---|---:|---:|"];
  for (const r of rows) lines.push(`| ${r.kind} | ${r.name === "" ? "" : `\`${r.name.slice(0, 60)}\``} | ${r.count.toFixed(2)} | ${Math.round(r.bytes)} |`);
  lines.push(`| | (these rows) | | ${Math.round(total)} |`);
  return lines.join("\n");
}
