// Turns the Kubernetes OpenAPI v2 document (api/openapi-spec/swagger.json of the
// k8s.io/kubernetes module) into the per-kind JSON schemas kubeconform reads, offline:
// <out>/<kind>-<group>-<version>.json (core: <kind>-<version>.json), "standalone-strict" as
// kubeconform calls it: every schema carries the definitions it needs, and objects refuse
// unknown fields. What openapi2jsonschema does, without Python or the network.
//
// Usage: node scripts/openapi-to-schemas.mjs <swagger.json> <out-dir>
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [, , input, out] = process.argv;
if (!input || !out) {
  console.error("usage: openapi-to-schemas.mjs <swagger.json> <out-dir>");
  process.exit(2);
}
const definitions = JSON.parse(readFileSync(input, "utf8")).definitions;

const PREFIX = "#/definitions/";

/** A definition made strict: unknown fields refused, int-or-string and nulls as Go accepts. */
function strict(schema) {
  if (Array.isArray(schema)) return schema.map(strict);
  if (schema === null || typeof schema !== "object") return schema;
  const s = {};
  for (const [k, v] of Object.entries(schema)) s[k] = strict(v);
  if (s.format === "int-or-string") {
    delete s.type;
    delete s.format;
    s.oneOf = [{ type: "string" }, { type: "integer" }];
  }
  if (s.properties && s.additionalProperties === undefined) s.additionalProperties = false;
  // Optional fields may be written as null (YAML `key:`), which the API server accepts.
  if (typeof s.type === "string" && schema !== undefined) s.type = [s.type, "null"];
  return s;
}

/** The names of every definition `name` needs, itself included. */
function closure(name, seen = new Set()) {
  if (seen.has(name)) return seen;
  seen.add(name);
  const visit = (node) => {
    if (Array.isArray(node)) node.forEach(visit);
    else if (node && typeof node === "object") {
      for (const [k, v] of Object.entries(node)) {
        if (k === "$ref" && typeof v === "string" && v.startsWith(PREFIX))
          closure(v.slice(PREFIX.length), seen);
        else visit(v);
      }
    }
  };
  visit(definitions[name]);
  return seen;
}

mkdirSync(out, { recursive: true });
let written = 0;
for (const [name, def] of Object.entries(definitions)) {
  for (const gvk of def["x-kubernetes-group-version-kind"] ?? []) {
    const kind = gvk.kind.toLowerCase();
    const group = gvk.group ? gvk.group.split(".")[0].toLowerCase() : "";
    const file = group ? `${kind}-${group}-${gvk.version}.json` : `${kind}-${gvk.version}.json`;
    const top = strict(def);
    const apiVersion = gvk.group ? `${gvk.group}/${gvk.version}` : gvk.version;
    top.properties.apiVersion = { type: "string", enum: [apiVersion] };
    top.properties.kind = { type: "string", enum: [gvk.kind] };
    top.required = [...new Set([...(top.required ?? []), "apiVersion", "kind"])];
    const needed = {};
    for (const n of closure(name)) if (n !== name) needed[n] = strict(definitions[n]);
    const schema = { $schema: "http://json-schema.org/schema#", ...top, definitions: needed };
    writeFileSync(join(out, file), JSON.stringify(schema));
    written++;
  }
}
console.error(`openapi-to-schemas: ${written} schemas in ${out}`);
