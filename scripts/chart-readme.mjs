// Writes the values table of the chart README from values.yaml's `# --` comments (as
// helm-docs does), between the markers <!-- values:start --> and <!-- values:end -->.
// Every value must carry a comment, itself or through the map it belongs to.
//
// Usage: node scripts/chart-readme.mjs [--check]   (--check: exit 1 when the README is stale)
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";

const CHART = join(dirname(fileURLToPath(import.meta.url)), "..", "helm", "jetstream-sse-gateway");
const START = "<!-- values:start -->";
const END = "<!-- values:end -->";

/** Each documented key path with its description, in file order. */
export function documentedKeys(text) {
  const docs = [];
  const stack = [];
  let pending;
  for (const line of text.split("\n")) {
    const comment = /^(\s*)# -- (.*)$/.exec(line);
    if (comment) {
      pending = comment[2];
      continue;
    }
    const key = /^(\s*)([A-Za-z][A-Za-z0-9]*):/.exec(line);
    if (!key) continue;
    const depth = key[1].length / 2;
    stack.length = depth;
    stack.push(key[2]);
    if (pending !== undefined) docs.push({ path: stack.join("."), description: pending });
    pending = undefined;
  }
  return docs;
}

/** Leaf paths (scalars, lists, empty maps) of the values that no documented path covers. */
export function undocumented(values, docs) {
  const covered = new Set(docs.map((d) => d.path));
  const missing = [];
  const walk = (node, path) => {
    if (covered.has(path)) return;
    const isMap = node !== null && typeof node === "object" && !Array.isArray(node);
    if (isMap && Object.keys(node).length > 0) {
      for (const [k, v] of Object.entries(node)) walk(v, path ? `${path}.${k}` : k);
    } else missing.push(path);
  };
  walk(values, "");
  return missing;
}

function get(values, path) {
  return path.split(".").reduce((node, k) => (node == null ? undefined : node[k]), values);
}

function typeOf(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "list";
  if (typeof v === "object") return "object";
  if (typeof v === "number") return Number.isInteger(v) ? "int" : "float";
  return typeof v;
}

const cell = (s) => s.replace(/\|/g, "\\|");

/** The markdown table for values.yaml's text. */
export function valuesTable(text) {
  const values = parse(text);
  const docs = documentedKeys(text);
  const missing = undocumented(values, docs);
  if (missing.length > 0) throw new Error(`values without a "# --" comment: ${missing.join(", ")}`);
  const rows = docs.map(({ path, description }) => {
    const v = get(values, path);
    return `| \`${path}\` | ${typeOf(v)} | \`${cell(JSON.stringify(v))}\` | ${cell(description)} |`;
  });
  return ["| key | type | default | description |", "|---|---|---|---|", ...rows].join("\n");
}

/** The README with its values table regenerated. */
export function renderReadme(readme, valuesText) {
  const a = readme.indexOf(START);
  const b = readme.indexOf(END);
  if (a < 0 || b < a) throw new Error(`README lacks the ${START} … ${END} markers`);
  return `${readme.slice(0, a + START.length)}\n${valuesTable(valuesText)}\n${readme.slice(b)}`;
}

const isMain = process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  const readmePath = join(CHART, "README.md");
  const readme = readFileSync(readmePath, "utf8");
  const next = renderReadme(readme, readFileSync(join(CHART, "values.yaml"), "utf8"));
  if (process.argv.includes("--check")) {
    if (next !== readme) {
      console.error("helm/jetstream-sse-gateway/README.md is stale: run `npm run chart:readme`");
      process.exit(1);
    }
  } else if (next !== readme) {
    writeFileSync(readmePath, next);
  }
}
