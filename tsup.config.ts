import { defineConfig } from "tsup";

/** One entry per public layer; the keys are the file names under dist/. */
export const entries = {
  index: "src/index.ts",
  core: "src/core/index.ts",
  http1: "src/protocols/http1/index.ts",
  websocket: "src/protocols/websocket/index.ts",
  server: "src/server/index.ts",
  client: "src/client/index.ts",
  testing: "src/testing/index.ts",
  web: "src/web/index.ts",
  "transports/node": "src/transports/node/index.ts",
  "transports/memory": "src/transports/memory/index.ts",
  "transports/bun": "src/transports/bun/index.ts",
};

export default defineConfig({
  entry: entries,
  format: ["esm", "cjs"],
  outDir: "dist",
  target: "node20",
  platform: "node",
  // Shared chunks keep one copy of each module, so that classes are the same
  // object whichever entry point imported them (instanceof works across them).
  splitting: true,
  sourcemap: true,
  clean: true,
  dts: false,
  shims: true,
  outExtension: ({ format }) => ({ js: format === "cjs" ? ".cjs" : ".js" }),
});
