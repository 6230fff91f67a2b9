#!/usr/bin/env node
// Installs what the test suite needs beyond npm packages: the real clients the
// integration tests talk to (curl; Python's Tornado and websockets from
// Debian's packages, which load only under /usr/bin/python3; Chromium, which
// the WebSocket interop test drives through playwright-core). Uses apt-get as
// root, or through sudo; otherwise says what to install and fails.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const wanted = [
  { pkg: "curl", ok: () => existsSync("/usr/bin/curl") },
  { pkg: "python3-tornado", ok: () => pythonHas("tornado") },
  { pkg: "python3-websockets", ok: () => pythonHas("websockets") },
  { pkg: "chromium", ok: () => existsSync("/usr/bin/chromium") },
];

function pythonHas(module) {
  if (!existsSync("/usr/bin/python3")) return false;
  return spawnSync("/usr/bin/python3", ["-c", `import ${module}`], { stdio: "ignore" }).status === 0;
}

const missing = wanted.filter((w) => !w.ok()).map((w) => w.pkg);
if (missing.length === 0) {
  console.log("setup: system packages present");
  process.exit(0);
}
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const hasSudo = spawnSync("sh", ["-c", "command -v sudo"], { stdio: "ignore" }).status === 0;
if (!existsSync("/usr/bin/apt-get") || (!isRoot && !hasSudo)) {
  console.error(`setup: please install these Debian/Ubuntu packages: ${missing.join(" ")}`);
  process.exit(1);
}
const prefix = isRoot ? [] : ["sudo"];
const run = (args) => {
  const [cmd, ...rest] = [...prefix, ...args];
  execFileSync(cmd, rest, { stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
};
console.log(`setup: installing ${missing.join(" ")}`);
run(["apt-get", "update", "-qq"]);
run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", ...missing]);
