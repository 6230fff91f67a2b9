/**
 * The layers of shared/DESIGN.md, checked on the import graph:
 * - core/ and protocols/ import nothing that does I/O and never touch `Bun`;
 * - arrows point down only (core <- protocols <- transports <- server/client
 *   <- web <- testing);
 * - web/ uses the layers below through their public entry points only.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const srcRoot = fileURLToPath(new URL("../src", import.meta.url));

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(path);
  }
  return out;
}

interface Import {
  file: string;
  specifier: string;
}

function imports(file: string): Import[] {
  const text = readFileSync(file, "utf8");
  const found: Import[] = [];
  const re = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|require\(\s*["']([^"']+)["']\s*\)/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    found.push({ file, specifier: (m[1] ?? m[2] ?? m[3])! });
  }
  return found;
}

/** The layer a file under src/ belongs to. */
function layerOf(path: string): string {
  const rel = relative(srcRoot, path).split("/");
  if (rel.length === 1) return "root";
  if (rel[0] === "protocols" || rel[0] === "transports") return `${rel[0]}/${rel[1]}`;
  return rel[0]!;
}

const files = sourceFiles(srcRoot);
const all = files.flatMap(imports);

const IO_MODULES = /^(node:)?(net|tls|fs|fs\/promises|http|https|http2|dgram|child_process|cluster|dns|worker_threads|zlib)$/;

describe("core and protocols do no I/O", () => {
  const pure = all.filter((i) => /^(core|protocols\/)/.test(layerOf(i.file)));

  it("import no I/O module (zlib only in the deflate codec's own file)", () => {
    const bad = pure.filter((i) => IO_MODULES.test(i.specifier) && !(i.specifier.endsWith("zlib") && i.file.endsWith("deflate-zlib.ts")));
    expect(bad.map((i) => `${relative(srcRoot, i.file)} -> ${i.specifier}`)).toEqual([]);
  });

  it("never touch Bun", () => {
    const bad = files
      .filter((f) => /^(core|protocols\/)/.test(layerOf(f)))
      .filter((f) => /\bBun\./.test(readFileSync(f, "utf8").replace(/\/\/.*$|\/\*[\s\S]*?\*\//gm, "")));
    expect(bad.map((f) => relative(srcRoot, f))).toEqual([]);
  });

  it("the deflate codec's zlib file is not imported by the engine", () => {
    const engine = all.filter((i) => layerOf(i.file) === "protocols/websocket" && !i.file.endsWith("index.ts") && i.specifier.includes("deflate-zlib"));
    expect(engine.map((i) => relative(srcRoot, i.file))).toEqual([]);
  });
});

/** Which layers each layer may import (its own always allowed). */
const ALLOWED: Record<string, RegExp> = {
  core: /^core$/,
  "protocols/http1": /^core$/,
  "protocols/websocket": /^core$/,
  "transports/node": /^core$/,
  "transports/memory": /^core$/,
  "transports/bun": /^core$/,
  server: /^(core|protocols\/.*|transports\/.*)$/,
  client: /^(core|protocols\/.*|transports\/.*|server)$/,
  web: /^(core|protocols\/.*|server|client)$/,
  testing: /^(core|protocols\/.*|transports\/.*|server|client|web)$/,
  root: /^(core|protocols\/.*|transports\/.*|server|client|web|testing)$/,
};

describe("layers point down only", () => {
  it("every import goes to its own layer or one below", () => {
    const bad: string[] = [];
    for (const i of all) {
      if (!i.specifier.startsWith(".")) continue;
      const from = layerOf(i.file);
      const path = resolve(dirname(i.file), i.specifier);
      const target = layerOf(existsSync(path) && statSync(path).isDirectory() ? join(path, "index.ts") : `${path}.ts`);
      if (target === from) continue;
      const allowed = ALLOWED[from];
      if (allowed === undefined || !allowed.test(target)) bad.push(`${relative(srcRoot, i.file)} (${from}) -> ${i.specifier} (${target})`);
    }
    expect(bad).toEqual([]);
  });

  it("web uses the layers below only through their entry points", () => {
    const bad = all
      .filter((i) => layerOf(i.file) === "web" && i.specifier.startsWith(".."))
      .filter((i) => !/\/(core|server|client|protocols\/(http1|websocket))$/.test(i.specifier) && !/\/(index)$/.test(i.specifier))
      .map((i) => `${relative(srcRoot, i.file)} -> ${i.specifier}`);
    expect(bad).toEqual([]);
  });
});
