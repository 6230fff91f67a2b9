/**
 * Bundles a benchmark server with esbuild (not minified, with a source
 * map), for profiling: the profile then names our functions, and anonymous
 * ones are placed by the map at their line in the TypeScript. Under tsx the
 * code is loaded through loader hooks in a worker thread and its positions
 * do not match the sources.
 *
 * @module
 */
import { build } from "esbuild";
import { join } from "node:path";
import { ROOT } from "../config";

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
