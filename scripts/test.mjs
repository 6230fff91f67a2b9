#!/usr/bin/env node
// `npm test`: a typecheck of everything tsconfig.json includes (src, test,
// bench, examples and the configs; vitest strips types without checking
// them), then the whole suite under Node, then again under Bun (the `bun`
// dev dependency). Both test runs write JSON reports under .test-report/,
// which .ci/run adds up; they run even when the typecheck fails, and any
// failure fails `npm test`. Extra arguments go to both test runs (e.g. a
// test folder).
import { spawnSync } from "node:child_process";

const args = process.argv.slice(2);
const steps = [
  { title: "typecheck (tsc --noEmit -p .)", what: "Typecheck", cmd: "npx", argv: ["tsc", "--noEmit", "-p", "."] },
  { title: "tests under Node", what: "Tests under Node", cmd: "npx", argv: ["vitest", "run", ...args] },
  { title: "tests under Bun", what: "Tests under Bun", cmd: "npx", argv: ["bun", "--bun", "vitest", "run", "--pool=threads", ...args] },
];
const failed = [];
for (const step of steps) {
  console.log(`\n=== typhoon ${step.title} ===\n`);
  const result = spawnSync(step.cmd, step.argv, { stdio: "inherit" });
  if (result.status !== 0) {
    failed.push(step.what);
    if (step.what === "Typecheck") console.log("\nTypecheck failed: the type errors above fail `npm test` (the tests run anyway).");
  } else if (step.what === "Typecheck") {
    console.log("Typecheck passed: no type errors in src, test, bench or examples.");
  }
}
if (failed.length > 0) console.log(`\nnpm test failed: ${failed.join(", ")}.`);
process.exit(failed.length > 0 ? 1 : 0);
