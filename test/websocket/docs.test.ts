/**
 * docs/websocket.md against the code: every name its TypeScript blocks
 * import from typhoon exists in that entry point, the blocks marked
 * `<!-- doc-test -->` run (their `assert`s hold), and the Autobahn spec
 * files it shows are the ones in examples/autobahn/.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const root = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));
const doc = readFileSync(root("docs/websocket.md"), "utf8");

interface Block {
  readonly lang: string;
  readonly code: string;
  readonly tested: boolean;
  /** The text just before the block (for the spec files). */
  readonly before: string;
}

function blocks(markdown: string): Block[] {
  const out: Block[] = [];
  const fence = /(<!-- doc-test -->\n)?```(\w*)\n([\s\S]*?)\n```/g;
  for (let m = fence.exec(markdown); m !== null; m = fence.exec(markdown)) {
    out.push({ lang: m[2]!, code: m[3]!, tested: m[1] !== undefined, before: markdown.slice(Math.max(0, m.index - 200), m.index) });
  }
  return out;
}

const all = blocks(doc);
const ts = all.filter((b) => b.lang === "ts");

/** The modules the page imports from, loaded through the same aliases as the tests. */
const ENTRY_POINTS: Record<string, () => Promise<Record<string, unknown>>> = {
  typhoon: () => import("typhoon"),
  "typhoon/websocket": () => import("typhoon/websocket"),
  "typhoon/server": () => import("typhoon/server"),
  "typhoon/client": () => import("typhoon/client"),
  "typhoon/web": () => import("typhoon/web"),
};

describe("docs/websocket.md", () => {
  it("has TypeScript blocks, some of them tested", () => {
    expect(ts.length).toBeGreaterThanOrEqual(6);
    expect(ts.filter((b) => b.tested).length).toBeGreaterThanOrEqual(4);
  });

  it("imports only names that the entry points export", async () => {
    const imports = /import\s*\{([^}]*)\}\s*from\s*"([^"]+)"/g;
    let checked = 0;
    for (const block of ts) {
      for (let m = imports.exec(block.code); m !== null; m = imports.exec(block.code)) {
        const from = m[2]!;
        if (!from.startsWith("typhoon")) continue;
        const load = ENTRY_POINTS[from];
        expect(load, `an entry point the test knows: ${from}`).toBeDefined();
        const module = await load!();
        for (const part of m[1]!.split(",")) {
          const name = part.trim();
          if (name === "" || name.startsWith("type ")) continue; // types are checked by tsc (examples and tests)
          expect(Object.keys(module), `${name} from ${from}`).toContain(name);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(15);
  });

  const dir = mkdtempSync(join(tmpdir(), "typhoon-docs-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  ts.filter((b) => b.tested).forEach((block, i) => {
    const heading = doc.slice(0, doc.indexOf(block.code)).match(/^#+ .*$/gm)?.at(-1) ?? "";
    it(`runs tested block ${i + 1} (under "${heading}")`, async () => {
      const file = join(dir, `block-${i + 1}.ts`);
      writeFileSync(file, `${block.code}\nexport {};\n`);
      await import(/* @vite-ignore */ file);
    });
  });

  it.each(["fuzzingclient.json", "fuzzingserver.json"])("shows examples/autobahn/%s as it is", (name) => {
    const shown = all.find((b) => b.lang === "json" && b.before.includes(`examples/autobahn/${name}\`:`));
    expect(shown, `a json block after "examples/autobahn/${name}:"`).toBeDefined();
    expect(JSON.parse(shown!.code)).toEqual(JSON.parse(readFileSync(root(`examples/autobahn/${name}`), "utf8")));
  });
});
