// Prints "N passed, N failed[, N skipped]" from the JSON reports that the
// test runs wrote under .test-report/ (one per runtime).
import { readdirSync, readFileSync } from "node:fs";

let passed = 0;
let failed = 0;
let skipped = 0;
let reports = 0;
let files = [];
try {
  files = readdirSync(".test-report").filter((f) => f.endsWith(".json"));
} catch {
  files = [];
}
for (const file of files) {
  const report = JSON.parse(readFileSync(`.test-report/${file}`, "utf8"));
  reports++;
  passed += report.numPassedTests ?? 0;
  failed += report.numFailedTests ?? 0;
  skipped += (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  // A test file that failed to load counts as a failure of its own.
  for (const suite of report.testResults ?? []) {
    if (suite.status === "failed" && (suite.assertionResults ?? []).length === 0) failed++;
  }
}
if (reports === 0) {
  console.log("no test report was written: the test run did not complete");
  failed = Math.max(failed, 1);
}
console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`);
