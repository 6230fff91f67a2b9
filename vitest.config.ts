import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

/** `typhoon` and its subpaths resolve to the sources in tests (as the exports map does for the build). */
const src = (path: string): string => fileURLToPath(new URL(`./src/${path}`, import.meta.url));
const alias = [
  { find: /^typhoon$/, replacement: src("index.ts") },
  { find: /^typhoon\/(core|server|client|web|testing)$/, replacement: src("$1/index.ts") },
  { find: /^typhoon\/(http1|websocket)$/, replacement: src("protocols/$1/index.ts") },
  { find: /^typhoon\/transports\/(node|memory|bun)$/, replacement: src("transports/$1/index.ts") },
];

// Vitest 5's reporter calls Map.groupBy, which Node 20 lacks (it came in
// Node 21); without it a failing test is reported as an "Unhandled Error".
const MapWithGroupBy = Map as unknown as { groupBy?: unknown };
if (typeof MapWithGroupBy.groupBy !== "function") {
  MapWithGroupBy.groupBy = function groupBy<K, V>(items: Iterable<V>, key: (item: V, index: number) => K): Map<K, V[]> {
    const out = new Map<K, V[]>();
    let i = 0;
    for (const item of items) {
      const k = key(item, i++);
      const list = out.get(k);
      if (list === undefined) out.set(k, [item]);
      else list.push(item);
    }
    return out;
  };
}

export default defineConfig({
  resolve: { alias },
  test: {
    include: ["test/**/*.test.ts"],
    // The JSON report is what .ci/run counts; the default reporter is for people.
    reporters: ["default", ["json", { outputFile: `.test-report/${process.versions.bun ? "bun" : "node"}.json` }]],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
