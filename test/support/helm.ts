import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseAllDocuments } from "yaml";

export const REPO_ROOT = path.resolve(__dirname, "..", "..");
export const CHART = path.join(REPO_ROOT, "helm", "jetstream-sse-gateway");
/** The values files `make test` renders the chart with (k8s*.yaml are for `make test-k8s`). */
export const CI_VALUES_DIR = path.join(REPO_ROOT, "helm", "ci");
/** The Kubernetes version the chart is validated against (scripts/ensure-tools.sh). */
export const K8S_VERSION = "1.34.4";

/** A rendered Kubernetes object, loosely typed: tests read the fields they assert on. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- arbitrary API object bodies
  [field: string]: any;
}

/** A tool from .tools/bin (where `make` installs it), else from PATH. */
export function tool(name: string): string {
  const local = path.join(REPO_ROOT, ".tools", "bin", name);
  return fs.existsSync(local) ? local : name;
}

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], input?: string): Run {
  const r = spawnSync(cmd, args, { input, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `helm template` with values files and `--set` pairs; throws with helm's message on failure. */
export function renderText(
  opts: { files?: string[]; set?: string[]; release?: string } = {},
): string {
  const args = ["template", opts.release ?? "rel", CHART, "--kube-version", K8S_VERSION];
  for (const f of opts.files ?? []) args.push("-f", f);
  for (const s of opts.set ?? []) args.push("--set", s);
  const r = run(tool("helm"), args);
  if (r.status !== 0) throw new Error(r.stderr.trim() || `helm template exited ${r.status}`);
  return r.stdout;
}

export function parseObjects(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

export function render(opts: Parameters<typeof renderText>[0] = {}): K8sObject[] {
  return parseObjects(renderText(opts));
}

/** The one object of `kind` (and name suffix, when several); throws when there is none. */
export function find(objects: K8sObject[], kind: string, nameSuffix = ""): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.metadata.name.endsWith(nameSuffix));
  if (!o) throw new Error(`no ${kind}${nameSuffix ? ` *${nameSuffix}` : ""} rendered`);
  return o;
}

/** kubeconform -strict against the schemas generated offline (never its internet default). */
export function kubeconform(text: string, skip: string[] = []): Run {
  const location = path.join(
    REPO_ROOT,
    ".tools",
    "k8s-schemas",
    "{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}",
    "{{ .ResourceKind }}{{ .KindSuffix }}.json",
  );
  const args = ["-strict", "-summary", "-output", "text", "-kubernetes-version", K8S_VERSION];
  args.push("-schema-location", location);
  if (skip.length > 0) args.push("-skip", skip.join(","));
  return run(tool("kubeconform"), args, text);
}

/** The kubernetes-models validators (scripts/validate-k8s-models.mjs), on Node 24. */
export function validateModels(text: string): Run {
  return run(process.execPath, [path.join(REPO_ROOT, "scripts", "validate-k8s-models.mjs")], text);
}

/**
 * NOTES.txt as `helm install` would print it. `helm template` skips NOTES and a client-side
 * dry run still wants a cluster, so a copy of the chart renders it as a comment-only manifest.
 */
export function renderNotes(set: string[] = []): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chart-notes-"));
  try {
    fs.cpSync(CHART, dir, { recursive: true });
    fs.writeFileSync(
      path.join(dir, "templates", "zz-notes.yaml"),
      '# {{ include (print $.Template.BasePath "/NOTES.txt") . | replace "\\n" "\\n# " }}\n',
    );
    const args = ["template", "rel", dir, "--kube-version", K8S_VERSION];
    args.push("--show-only", "templates/zz-notes.yaml");
    for (const s of set) args.push("--set", s);
    const r = run(tool("helm"), args);
    if (r.status !== 0) throw new Error(r.stderr.trim());
    return r.stdout
      .split("\n")
      .filter((l) => l.startsWith("#") && !l.startsWith("# Source:"))
      .map((l) => l.replace(/^# ?/, ""))
      .join("\n");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
