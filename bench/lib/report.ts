/** The bench's output: one line at a time to stdout, numbers in en-US grouping. */
export function log(line = ""): void {
  process.stdout.write(line + "\n");
}

/** `n` with `digits` decimals and thousands separators; "n/a" when not finite. */
export const fmt = (n: number, digits = 0): string =>
  Number.isFinite(n)
    ? n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : "n/a";

/** `a / b` as a ratio with two decimals and an `x`, "n/a" when either is missing or not finite. */
export const ratio = (a: number | undefined, b: number | undefined): string =>
  a === undefined || b === undefined || !Number.isFinite(a / b) ? "n/a" : `${fmt(a / b, 2)}x`;
