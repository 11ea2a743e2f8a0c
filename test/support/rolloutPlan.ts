/**
 * What a rolling restart does, read from the Helm chart as rendered: the Deployment's strategy
 * and minReadySeconds, the pod's grace period, preStop pause and readiness probe, and the gateway
 * environment from the ConfigMap the container loads. The driver takes every number from here;
 * a faster run is asked of the chart through values, never written into the driver.
 */
import fs from "node:fs";
import path from "node:path";
import { CHART, find, K8S_VERSION, parseObjects, render, run, type K8sObject } from "./helm";

export interface RolloutPlan {
  /** `spec.replicas`. */
  replicas: number;
  /** `rollingUpdate.maxSurge`, resolved against replicas (a percentage rounds up). */
  maxSurge: number;
  /** `rollingUpdate.maxUnavailable`, resolved against replicas (a percentage rounds down). */
  maxUnavailable: number;
  /** `spec.minReadySeconds`: how long a new pod stays ready before it counts as available. */
  minReadySeconds: number;
  /** `terminationGracePeriodSeconds`: from the start of deletion (preStop included) to SIGKILL. */
  gracePeriodSeconds: number;
  /** `lifecycle.preStop.sleep.seconds` (0 without a preStop hook). */
  preStopSeconds: number;
  /** Startup probe period × failure threshold: how long a new pod may take to answer /livez. */
  startupBudgetSeconds: number;
  /** The readiness probe's `httpGet.path`. */
  readinessPath: string;
  readinessPeriodSeconds: number;
  readinessTimeoutSeconds: number;
  /** Failed probes before the pod leaves the Service. */
  failureThreshold: number;
  /** Passed probes before the pod joins the Service. */
  successThreshold: number;
  /** The gateway's environment: the ConfigMap's data, then literal `env` entries. */
  env: Record<string, string>;
}

/** A Kubernetes IntOrString against a total (the Deployment controller's rounding). */
function intOrPercent(value: unknown, total: number, roundUp: boolean, what: string): number {
  if (typeof value === "number" && Number.isInteger(value)) return value;
  const m = typeof value === "string" ? /^(\d+)%$/.exec(value) : null;
  if (!m)
    throw new Error(`${what}: ${JSON.stringify(value)} is neither an integer nor a percentage`);
  const exact = (Number(m[1]) * total) / 100;
  return roundUp ? Math.ceil(exact) : Math.floor(exact);
}

function num(value: unknown, what: string, fallback?: number): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new Error(`${what}: expected a number, rendered ${JSON.stringify(value)}`);
  }
  return value;
}

interface NamedPort {
  name?: string;
  containerPort: number;
}
interface EnvVar {
  name: string;
  value?: string;
}

/** Reads the plan from rendered objects (`render()` of test/support/helm.ts). */
export function rolloutPlan(objects: K8sObject[]): RolloutPlan {
  const deployment = find(objects, "Deployment");
  const spec = deployment.spec;
  const pod = spec.template.spec;
  const containers = pod.containers as Array<Record<string, unknown>>;
  const gateway = containers.find((c) => c.name === "gateway");
  if (!gateway) throw new Error("the Deployment has no container named gateway");

  const replicas = num(spec.replicas, "spec.replicas", 1);
  // Kubernetes' defaults when the chart leaves a field out.
  const strategy = spec.strategy?.rollingUpdate ?? {};
  const maxSurge = intOrPercent(strategy.maxSurge ?? "25%", replicas, true, "maxSurge");
  const maxUnavailable = intOrPercent(
    strategy.maxUnavailable ?? "25%",
    replicas,
    false,
    "maxUnavailable",
  );
  if (maxSurge === 0 && maxUnavailable === 0) {
    throw new Error("maxSurge and maxUnavailable are both 0: no rollout could make progress");
  }

  const env: Record<string, string> = {};
  const envFrom = (gateway.envFrom ?? []) as Array<{ configMapRef?: { name: string } }>;
  for (const source of envFrom) {
    if (!source.configMapRef) continue;
    const cm = objects.find(
      (o) => o.kind === "ConfigMap" && o.metadata.name === source.configMapRef?.name,
    );
    if (!cm) throw new Error(`envFrom names ConfigMap ${source.configMapRef.name}, not rendered`);
    Object.assign(env, cm.data as Record<string, string>);
  }
  for (const e of (gateway.env ?? []) as EnvVar[]) if (e.value !== undefined) env[e.name] = e.value;

  const probe = gateway.readinessProbe as
    | {
        httpGet?: { path?: string; port?: string | number };
        periodSeconds?: number;
        timeoutSeconds?: number;
        failureThreshold?: number;
        successThreshold?: number;
      }
    | undefined;
  if (!probe?.httpGet) throw new Error("the gateway container has no httpGet readiness probe");
  // The balancer checks the instance's ADMIN_PORT, so the probe must aim at that port.
  const ports = (gateway.ports ?? []) as NamedPort[];
  const probePort = probe.httpGet.port;
  const target =
    typeof probePort === "number"
      ? probePort
      : ports.find((p) => p.name === probePort)?.containerPort;
  if (target === undefined || String(target) !== env.ADMIN_PORT) {
    throw new Error(
      `the readiness probe aims at port ${String(probePort)}, not ADMIN_PORT (${env.ADMIN_PORT})`,
    );
  }

  const startup = gateway.startupProbe as
    { periodSeconds?: number; failureThreshold?: number } | undefined;
  const lifecycle = gateway.lifecycle as { preStop?: { sleep?: { seconds?: number } } } | undefined;
  return {
    replicas,
    maxSurge,
    maxUnavailable,
    minReadySeconds: num(spec.minReadySeconds, "spec.minReadySeconds", 0),
    // Kubernetes' default grace period is 30 s.
    gracePeriodSeconds: num(pod.terminationGracePeriodSeconds, "terminationGracePeriodSeconds", 30),
    preStopSeconds: num(lifecycle?.preStop?.sleep?.seconds, "preStop.sleep.seconds", 0),
    // Without a startup probe the readiness probe alone decides; Kubernetes never gives up.
    startupBudgetSeconds: startup
      ? num(startup.periodSeconds, "startupProbe.periodSeconds", 10) *
        num(startup.failureThreshold, "startupProbe.failureThreshold", 3)
      : 60,
    readinessPath: probe.httpGet.path ?? "/",
    readinessPeriodSeconds: num(probe.periodSeconds, "readinessProbe.periodSeconds", 10),
    readinessTimeoutSeconds: num(probe.timeoutSeconds, "readinessProbe.timeoutSeconds", 1),
    failureThreshold: num(probe.failureThreshold, "readinessProbe.failureThreshold", 3),
    successThreshold: num(probe.successThreshold, "readinessProbe.successThreshold", 1),
    env,
  };
}

/** The first directory at or above `from` holding `relative`. */
function findUp(from: string, relative: string): string | undefined {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, relative))) return dir;
    if (path.dirname(dir) === dir) return undefined;
  }
}

/** The repository root, whether this runs from test/support or compiled in dist/test/support. */
export function repoRoot(): string {
  const root = findUp(__dirname, path.join("helm", "jetstream-sse-gateway", "Chart.yaml"));
  if (!root) throw new Error(`no helm/jetstream-sse-gateway above ${__dirname}`);
  return root;
}

/**
 * Renders the chart with `--set` values and reads the plan. From source this is helm.ts's
 * `render()`; compiled into dist/ (the `make rollout` benchmark) helm.ts's paths point into
 * dist/, so the same `helm template` runs against the chart found above.
 */
export function renderRolloutPlan(set: string[]): RolloutPlan {
  if (fs.existsSync(CHART)) return rolloutPlan(render({ set }));
  const root = repoRoot();
  const local = path.join(root, ".tools", "bin", "helm");
  const helm = fs.existsSync(local) ? local : "helm";
  const chart = path.join(root, "helm", "jetstream-sse-gateway");
  const args = ["template", "rel", chart, "--kube-version", K8S_VERSION];
  for (const s of set) args.push("--set", s);
  const r = run(helm, args);
  if (r.status !== 0) throw new Error(r.stderr.trim() || `helm template exited ${r.status}`);
  return rolloutPlan(parseObjects(r.stdout));
}
