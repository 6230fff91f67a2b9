/**
 * Bundles a benchmark server with esbuild (not minified, with a source
 * map). Two uses:
 *
 * - **Running.** Node servers written in TypeScript are measured from a
 *   bundle, as an application would be deployed, not through tsx: tsx's
 *   esbuild transform sets `keepNames`, which wraps every function created
 *   at run time in `__name(fn, "name")`, an `Object.defineProperty` that
 *   also gives each closure its own property store (measured: ~4 KiB more
 *   per idle WebSocket connection in typhoon, and CPU per closure made).
 *   `BENCH_TSX=1` runs them through tsx as written instead.
 * - **Profiling.** The profile then names our functions, and anonymous
 *   ones are placed by the map at their line in the TypeScript. Under tsx
 *   the code is loaded through loader hooks in a worker thread and its
 *   positions do not match the sources.
 *
 * @module
 */
import { build } from "esbuild";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { NODE, ROOT, TSX } from "../config";

export async function bundleServer(script: string, outDir: string, name: string): Promise<{ file: string; map: string }> {
  const file = join(outDir, `${name}.mjs`);
  await build({
    entryPoints: [join(ROOT, script)],
    outfile: file,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    sourcemap: "external",
    logLevel: "error",
    // undici's llhttp files are CommonJS; give them a require in an ES module.
    banner: { js: 'import { createRequire as __benchCreateRequire } from "node:module"; const require = __benchCreateRequire(import.meta.url);' },
  });
  return { file, map: `${file}.map` };
}

const bundled = new Map<string, Promise<string>>();

/**
 * The command to run: a Node command that loads a TypeScript file through
 * tsx (`[NODE, "--import", "tsx", ...flags, "file.ts"]`) becomes
 * `[NODE, ...flags, "bundle.mjs"]`, bundled once per run into `outDir`;
 * other commands, and every command with `BENCH_TSX=1`, are returned as
 * they are.
 */
export async function runnableCommand(command: readonly string[], outDir: string): Promise<string[]> {
  const script = command[command.length - 1]!;
  const tsx = command.length >= 4 && command[0] === NODE && command[1] === TSX[0] && command[2] === TSX[1];
  if (!tsx || !script.endsWith(".ts") || process.env.BENCH_TSX === "1") return [...command];
  let file = bundled.get(script);
  if (file === undefined) {
    mkdirSync(outDir, { recursive: true });
    const name = script.replace(/^bench\//, "").replace(/\.ts$/, "").replace(/[^A-Za-z0-9]+/g, "-");
    file = bundleServer(script, outDir, name).then((b) => b.file);
    bundled.set(script, file);
  }
  return [NODE, ...command.slice(3, -1), await file];
}
