/**
 * Just enough of source maps (v3) to turn a position in a bundle into a
 * file and line of the original TypeScript, for the profile report.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_VALUE = new Map([...B64].map((c, i) => [c, i]));

/** One mapping: generated column, and the source position it came from. */
type Segment = [genCol: number, source: number, line: number, col: number];

export interface SourcePosition {
  /** Absolute path of the original file. */
  file: string;
  /** 0-based line in it. */
  line: number;
}

export class SourceMap {
  readonly #sources: string[];
  readonly #lines: Segment[][];

  constructor(mapFile: string) {
    const map = JSON.parse(readFileSync(mapFile, "utf8")) as { sources: string[]; sourceRoot?: string; mappings: string };
    const base = resolve(dirname(mapFile), map.sourceRoot ?? "");
    this.#sources = map.sources.map((s) => resolve(base, s));
    this.#lines = decode(map.mappings);
  }

  /** The original position of a 0-based line and column of the bundle, or null. */
  lookup(line: number, column: number): SourcePosition | null {
    const segments = this.#lines[line];
    if (segments === undefined || segments.length === 0) return null;
    let lo = 0;
    let hi = segments.length - 1;
    if (segments[0]![0] > column) return null;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (segments[mid]![0] <= column) lo = mid;
      else hi = mid - 1;
    }
    const s = segments[lo]!;
    return { file: this.#sources[s[1]]!, line: s[2] };
  }
}

function decode(mappings: string): Segment[][] {
  const lines: Segment[][] = [];
  let source = 0;
  let srcLine = 0;
  let srcCol = 0;
  for (const lineText of mappings.split(";")) {
    const segments: Segment[] = [];
    let genCol = 0;
    for (const seg of lineText.split(",")) {
      if (seg === "") continue;
      const v = vlq(seg);
      genCol += v[0]!;
      if (v.length >= 4) {
        source += v[1]!;
        srcLine += v[2]!;
        srcCol += v[3]!;
        segments.push([genCol, source, srcLine, srcCol]);
      }
    }
    lines.push(segments);
  }
  return lines;
}

function vlq(text: string): number[] {
  const out: number[] = [];
  let value = 0;
  let shift = 0;
  for (const c of text) {
    const digit = B64_VALUE.get(c);
    if (digit === undefined) throw new Error(`Bad source map: ${JSON.stringify(c)} is not base64`);
    value += (digit & 31) << shift;
    if (digit & 32) shift += 5;
    else {
      out.push(value & 1 ? -(value >>> 1) : value >>> 1);
      value = 0;
      shift = 0;
    }
  }
  return out;
}
