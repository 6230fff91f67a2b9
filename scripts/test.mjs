#!/usr/bin/env node
// `npm test`: the whole suite under Node, then again under Bun (the `bun`
// dev dependency). Both runs write JSON reports under .test-report/, which
// .ci/run adds up. Extra arguments go to both runs (e.g. a test folder).
import { spawnSync } from "node:child_process";

const args = process.argv.slice(2);
const runs = [
  { name: "Node", cmd: "npx", argv: ["vitest", "run", ...args] },
  { name: "Bun", cmd: "npx", argv: ["bun", "--bun", "vitest", "run", "--pool=threads", ...args] },
];
let failed = false;
for (const run of runs) {
  console.log(`\n=== typhoon tests under ${run.name} ===\n`);
  const result = spawnSync(run.cmd, run.argv, { stdio: "inherit" });
  if (result.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
