/**
 * Small figures helpers the benchmark tables share.
 *
 * @module
 */

/** The median of the finite values; NaN when there are none. */
export function median(values: number[]): number {
  const s = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** A whole number with thousands separators ("–" when not finite). */
export function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–";
}

/**
 * How far a run is from a clean measurement, in CPUs: what other tasks took
 * on the benchmark CPUs, plus how far the busier of the server and the load
 * generator stayed below 90% of its CPU (someone is always the bottleneck
 * on a quiet machine; when neither is, the time went to something the
 * counters do not see, such as interrupts for other processes' traffic).
 */
export function disturbance(othersCpu: number, serverCpu: number, loadCpu: number): number {
  return othersCpu + Math.max(0, 0.9 - Math.max(serverCpu || 0, loadCpu || 0));
}

/** Why a run counts as disturbed, in words; `load` names the load generator ("wrk", "client"). */
export function whyDisturbed(othersCpu: number, serverCpu: number, loadCpu: number, load: string): string {
  const parts: string[] = [];
  if (othersCpu > 0.02) parts.push(`other tasks took ${(othersCpu * 100).toFixed(0)}% of a CPU`);
  if (Math.max(serverCpu, loadCpu) < 0.9) parts.push(`neither server (${(serverCpu * 100).toFixed(0)}%) nor ${load} (${(loadCpu * 100).toFixed(0)}%) was saturated`);
  return parts.join("; ");
}
