/**
 * The built package: `npm run build` makes ESM, CommonJS and declarations,
 * and a consumer can import every entry point both ways, with one copy of
 * each class (instanceof works across entry points).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const pkg = JSON.parse(execFileSync("node", ["-p", "JSON.stringify(require('./package.json'))"], { cwd: root, encoding: "utf8" }));
const subpaths = Object.keys(pkg.exports).filter((k: string) => k !== "./package.json");
let consumer: string;

beforeAll(() => {
  execFileSync("npm", ["run", "build"], { cwd: root, stdio: "pipe" });
  consumer = mkdtempSync(join(tmpdir(), "typhoon-consumer-"));
  mkdirSync(join(consumer, "node_modules"));
  symlinkSync(root, join(consumer, "node_modules", "typhoon"), "dir");
}, 240_000);

function specifier(subpath: string): string {
  return subpath === "." ? "typhoon" : `typhoon/${subpath.slice(2)}`;
}

describe("the built package", () => {
  it("has declarations for every entry point", () => {
    for (const subpath of subpaths) {
      const types = join(root, pkg.exports[subpath].types);
      expect(existsSync(types), types).toBe(true);
    }
  });

  it("imports every entry point as ESM", () => {
    const lines = subpaths.map((s: string, i: number) => `import * as m${i} from ${JSON.stringify(specifier(s))};`);
    lines.push(`console.log(JSON.stringify([${subpaths.map((_: string, i: number) => `Object.keys(m${i}).length`).join(",")}]));`);
    lines.push(`import { HTTPHeaders as A } from "typhoon"; import { HTTPHeaders as B } from "typhoon/core";`);
    lines.push(`import { Application, RequestHandler } from "typhoon";`);
    lines.push(`console.log(A === B, typeof Application, typeof RequestHandler);`);
    writeFileSync(join(consumer, "esm.mjs"), lines.join("\n"));
    const out = execFileSync("node", ["esm.mjs"], { cwd: consumer, encoding: "utf8" }).trim().split("\n");
    const counts = JSON.parse(out[0]!) as number[];
    for (const n of counts) expect(n).toBeGreaterThan(0);
    expect(out[1]).toBe("true function function");
  });

  it("requires every entry point as CommonJS", () => {
    const lines = subpaths.map((s: string, i: number) => `const m${i} = require(${JSON.stringify(specifier(s))});`);
    lines.push(`console.log(JSON.stringify([${subpaths.map((_: string, i: number) => `Object.keys(m${i}).length`).join(",")}]));`);
    lines.push(`console.log(require("typhoon").HTTPHeaders === require("typhoon/core").HTTPHeaders);`);
    writeFileSync(join(consumer, "cjs.cjs"), lines.join("\n"));
    const out = execFileSync("node", ["cjs.cjs"], { cwd: consumer, encoding: "utf8" }).trim().split("\n");
    for (const n of JSON.parse(out[0]!) as number[]) expect(n).toBeGreaterThan(0);
    expect(out[1]).toBe("true");
  });

  it("serves the hello world from the built ESM", () => {
    const script = `
      import { ServerConnection } from "typhoon/http1";
      const c = new ServerConnection({ now: () => 0 });
      c.receiveData(Buffer.from("GET / HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n"));
      const ev = c.nextEvent();
      c.writeResponse(ev.id, { status: 200 }, "Hello, world");
      process.stdout.write(Buffer.from(c.takeOutput()).toString());
    `;
    writeFileSync(join(consumer, "hello.mjs"), script);
    const out = execFileSync("node", ["hello.mjs"], { cwd: consumer, encoding: "utf8" });
    expect(out).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nHello, world$/);
  });
});
