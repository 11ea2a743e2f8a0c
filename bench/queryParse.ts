/**
 * `node dist/bench/queryParse.js`: time to parse an `/events` query string of one name repeated
 * N times (`?a&a&a…`, the shape that used to be quadratic), by the gateway's parser and, for
 * comparison, by the old copy-per-repeat algorithm (up to 8,000 repeats: beyond, it takes
 * seconds). In-process, no server. Prints figures; asserts nothing.
 *
 * The bounds are set wide so the parser does the whole job; with the defaults
 * (HTTP_MAX_QUERY_PARAMS=64) it stops at the 65th parameter.
 */
import { parseEventsUrl } from "../src/http/request";
import { median } from "./lib/histogram";

const SIZES = [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000];
const OLD_MAX = 8_000;
const RUNS = 5;
const WIDE = { maxQueryBytes: 1 << 30, maxParams: 1 << 30 };

/** The parser before it was made linear: each repeat copied the array of earlier values. */
function oldParse(rawUrl: string): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = Object.create(null) as Record<
    string,
    string | string[]
  >;
  const q = rawUrl.indexOf("?");
  for (const part of rawUrl.slice(q + 1).split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const name = decodeURIComponent(eq < 0 ? part : part.slice(0, eq));
    const value = eq < 0 ? "" : decodeURIComponent(part.slice(eq + 1));
    const prev = query[name];
    query[name] =
      prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return query;
}

function timeMs(fn: () => unknown): number {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  return median(times);
}

const fmt = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : "n/a");

process.stdout.write("query parse time, one name repeated N times (median of 5 runs, ms)\n\n");
process.stdout.write("| repeats | query bytes | gateway | old algorithm |\n");
process.stdout.write("| ------: | ----------: | ------: | ------------: |\n");
for (const n of SIZES) {
  const url = "/events?" + Array.from({ length: n }, () => "a").join("&");
  const now = timeMs(() => parseEventsUrl(url, WIDE));
  const old = n <= OLD_MAX ? timeMs(() => oldParse(url)) : NaN;
  process.stdout.write(`| ${n} | ${url.length - 8} | ${fmt(now)} | ${fmt(old)} |\n`);
}
