// Prints the counts from the JSON reports that the test runs wrote under
// .test-report/ (see scripts/test.mjs and vitest.config.ts): one line per
// runtime, then "N passed, N failed[, N skipped]" over both as the last line.
// Both runtimes' reports are required: a missing or unreadable one counts as
// a failure, with a line that says so.
import { readFileSync } from "node:fs";

const RUNTIMES = [
  { name: "Node", file: ".test-report/node.json" },
  { name: "Bun", file: ".test-report/bun.json" },
];

/** The line "N passed, N failed[, N skipped]". */
const countsLine = ({ passed, failed, skipped }) => `${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`;

/** The counts of one report, or an explanation of why there are none. */
function readReport(file) {
  let report;
  try {
    report = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    const why = error?.code === "ENOENT" ? "was not written" : `cannot be read (${error?.message ?? error})`;
    return { missing: `${file} ${why}: the test run did not complete` };
  }
  const counts = {
    passed: report.numPassedTests ?? 0,
    failed: report.numFailedTests ?? 0,
    skipped: (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0),
  };
  // A test file that failed with no failed test (it did not load, or a hook
  // such as beforeAll failed and its tests were skipped) counts as a failure
  // of its own.
  for (const suite of report.testResults ?? []) {
    if (suite.status === "failed" && !(suite.assertionResults ?? []).some((test) => test.status === "failed")) counts.failed++;
  }
  return { counts };
}

const total = { passed: 0, failed: 0, skipped: 0 };
for (const { name, file } of RUNTIMES) {
  const { counts, missing } = readReport(file);
  if (missing !== undefined) {
    console.log(`${name}: no report, counted as 1 failed: ${missing}`);
    total.failed++;
    continue;
  }
  console.log(`${name}: ${countsLine(counts)}`);
  total.passed += counts.passed;
  total.failed += counts.failed;
  total.skipped += counts.skipped;
}
console.log(countsLine(total));
