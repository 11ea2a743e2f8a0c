// Validates Kubernetes objects (a multi-document YAML stream on stdin) with the validators of
// the kubernetes-models packages. They check what kubeconform misses, such as enum values
// (`strategy.type: Sideways`). Prints one JSON line per object: {kind, name, ok, error?};
// exits 1 when any object is invalid or of an unknown kind.
//
// Usage: helm template … | node scripts/validate-k8s-models.mjs
import { parseAllDocuments } from "yaml";

// Packages by API group; the core group is "v1" in kubernetes-models.
const PACKAGES = [
  ["monitoring.coreos.com", "@kubernetes-models/prometheus-operator"],
  ["gateway.networking.k8s.io", "@kubernetes-models/gateway-api"],
];

async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const pkg = PACKAGES.find(([g]) => g === group)?.[1];
  const path = pkg
    ? `${pkg}/${group}/${version}`
    : `kubernetes-models/${group ? `${group}/` : ""}${version}`;
  const mod = await import(path);
  return mod[kind];
}

let input = "";
for await (const chunk of process.stdin) input += chunk;
let failed = 0;
for (const doc of parseAllDocuments(input)) {
  const obj = doc.toJS();
  if (!obj) continue;
  const name = obj.metadata?.name;
  let Model;
  try {
    Model = await modelFor(obj.apiVersion, obj.kind);
  } catch {
    Model = undefined;
  }
  if (!Model) {
    failed++;
    console.log(
      JSON.stringify({
        kind: obj.kind,
        name,
        ok: false,
        error: `unknown kind ${obj.apiVersion} ${obj.kind}`,
      }),
    );
    continue;
  }
  try {
    new Model(obj).validate();
    console.log(JSON.stringify({ kind: obj.kind, name, ok: true }));
  } catch (err) {
    failed++;
    console.log(JSON.stringify({ kind: obj.kind, name, ok: false, error: err.message }));
  }
}
process.exit(failed ? 1 : 0);
