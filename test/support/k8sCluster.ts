import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import YAML from "yaml";
import { freePort } from "./ports";
import { isRunning, onHostExit, sleep, terminate, trackChild } from "./process";

/**
 * A real Kubernetes control plane on 127.0.0.1 with no kubelet: etcd, kube-apiserver,
 * kube-controller-manager and kube-scheduler, plus kwok, which plays the kubelet of fake Node
 * objects (it moves their pods to Running/Ready, or wherever its Stages say, without containers).
 * Everything the API server, the controllers and the scheduler do is the real thing: validation,
 * defaulting, admission, rollouts, PodDisruptionBudgets, evictions, scheduling constraints.
 *
 * The binaries come from .tools/bin (`bash scripts/ensure-tools.sh k8s`), else from PATH.
 * Certificates, etcd data and each component's log live in a temporary directory that stop()
 * deletes; K8S_TEST_KEEP_DIR=1 keeps it (and prints where) for a look at the logs.
 */

const REPO_ROOT = path.resolve(__dirname, "..", "..");
const TOOLS_BIN = path.join(REPO_ROOT, ".tools", "bin");
const COMPONENTS = [
  "etcd",
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
  "kwok",
] as const;
type Component = (typeof COMPONENTS)[number];
const CLIENTS = ["kubectl", "helm", "openssl"] as const;

/** The annotation kwok is told to select its nodes by (`--manage-nodes-with-annotation-selector`). */
export const KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node";

/**
 * Only the controllers the tests exercise, to keep a 2-core machine responsive. The service
 * account ones let pods be admitted (the ServiceAccount admission plugin wants `default` to
 * exist); node-lifecycle takes the not-ready taint that node admission puts on new nodes off
 * once kwok reports them Ready.
 */
const CONTROLLERS = [
  "serviceaccount-token-controller",
  "serviceaccount-controller",
  "root-ca-certificate-publisher-controller",
  "namespace-controller",
  "node-lifecycle-controller",
  "deployment-controller",
  "replicaset-controller",
  "disruption-controller",
];

const SERVICE_CIDR = "10.96.0.0/16";
const SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local";
const STARTUP_TIMEOUT_MS = 120_000;

export interface FakeNode {
  name: string;
  /** The `topology.kubernetes.io/zone` label. */
  zone: string;
  /** Allocatable CPU. Default "4". */
  cpu?: string;
  /** Allocatable memory. Default "8Gi". */
  memory?: string;
  /** Allocatable pod count. Default 110. */
  pods?: number;
}

export interface K8sClusterOptions {
  /** Node objects created once the control plane is up; kwok manages each of them. */
  nodes: readonly FakeNode[];
  /**
   * A kwok configuration file (Stage documents, `--config`). Pod stages given there replace all
   * of kwok's default pod stages. Default: kwok's built-in stages.
   */
  kwokConfig?: string;
}

export interface CommandOptions {
  /** Written to the child's stdin. */
  input?: string;
  /** Kill the command after this long. Default 120 s. */
  timeoutMs?: number;
  /** Resolve with a non-zero exit code instead of throwing. Default false. */
  allowFailure?: boolean;
}

export interface CommandResult {
  /** Exit code; null when the command was killed (timeout). */
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface ApiResponse {
  status: number;
  body: string;
}

export interface K8sCluster {
  /** Temporary directory holding certificates, kubeconfig, etcd data and component logs. */
  readonly dir: string;
  /** Admin kubeconfig (client certificate in group system:masters). */
  readonly kubeconfig: string;
  /** The API server's URL, https://127.0.0.1:<port>. */
  readonly server: string;
  /** Milliseconds each startup step took, in order. */
  readonly startupTimings: ReadonlyMap<string, number>;
  kubectl(args: readonly string[], options?: CommandOptions): Promise<CommandResult>;
  helm(args: readonly string[], options?: CommandOptions): Promise<CommandResult>;
  /** A request to the API server as the admin user. */
  request(method: string, apiPath: string, body?: unknown): Promise<ApiResponse>;
  /** GET that expects 200 and parses JSON. */
  get<T>(apiPath: string): Promise<T>;
  /** The last `bytes` of each component's log, for failure messages. */
  logs(bytes?: number): string;
  /** Stops every component and deletes the directory. Idempotent. */
  stop(): Promise<void>;
}

/** Each binary the cluster needs, from .tools/bin when it is there, else by name from PATH. */
function toolPath(name: string): string {
  const local = path.join(TOOLS_BIN, name);
  return fs.existsSync(local) ? local : name;
}

function onPath(name: string): boolean {
  if (fs.existsSync(path.join(TOOLS_BIN, name))) return true;
  return (process.env.PATH ?? "")
    .split(path.delimiter)
    .some((dir) => dir !== "" && fs.existsSync(path.join(dir, name)));
}

/** The binaries that are missing, so a test can say what to install instead of failing late. */
export function missingK8sTools(): string[] {
  return [...COMPONENTS, ...CLIENTS].filter((name) => !onPath(name));
}

/**
 * Runs a command to completion, tracked so it dies with the test process. Throws with the
 * command's output on a non-zero exit unless `allowFailure` is set.
 */
export function runCommand(
  command: string,
  args: readonly string[],
  options: CommandOptions & { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<CommandResult> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  return new Promise((resolve, reject) => {
    const child = spawn(toolPath(command), args, {
      cwd: options.cwd ?? REPO_ROOT,
      env: options.env ?? process.env,
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    trackChild(child);
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    if (options.input !== undefined) child.stdin?.end(options.input);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`${command}: ${err.message}`, { cause: err }));
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      const result = { code, stdout, stderr };
      if (code === 0 || options.allowFailure === true) {
        resolve(result);
        return;
      }
      const how = code === null ? `was killed after ${timeoutMs} ms` : `exited with ${code}`;
      reject(
        new Error(
          `\`${command} ${args.join(" ")}\` ${how}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`,
        ),
      );
    });
  });
}

/** Thrown by a waitFor probe to fail at once instead of polling on (a process died, say). */
export class StopWaiting extends Error {
  override name = "StopWaiting";
}

/** Polls `probe` until it returns a value other than undefined; throws the last reason on timeout. */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      if (err instanceof StopWaiting) throw err;
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const reason = lastError instanceof Error ? `: ${lastError.message}` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${reason}`);
    }
    await sleep(intervalMs);
  }
}

interface Pki {
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  adminCert: string;
  adminKey: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
}

/**
 * A throwaway CA, the API server's serving certificate, an admin client certificate (group
 * system:masters, which RBAC lets do anything) and the service-account token signing key.
 * P-256 keys: generated in milliseconds and accepted by every component.
 */
async function createPki(dir: string): Promise<Pki> {
  const p = (name: string): string => path.join(dir, name);
  const ssl = (args: string[]): Promise<CommandResult> => runCommand("openssl", args, { cwd: dir });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const pki: Pki = {
    caCert: p("ca.crt"),
    caKey: p("ca.key"),
    servingCert: p("apiserver.crt"),
    servingKey: p("apiserver.key"),
    adminCert: p("admin.crt"),
    adminKey: p("admin.key"),
    serviceAccountKey: p("sa.key"),
    serviceAccountPub: p("sa.pub"),
  };
  // prettier-ignore
  await ssl([
    "req", "-x509", ...ec, "-days", "2", "-subj", "/CN=k8s-test-ca",
    "-keyout", pki.caKey, "-out", pki.caCert,
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
  ]);
  const sign = async (name: string, subject: string, extensions: string): Promise<void> => {
    fs.writeFileSync(p(`${name}.ext`), extensions);
    // prettier-ignore
    await ssl(["req", "-new", ...ec, "-subj", subject, "-keyout", p(`${name}.key`), "-out", p(`${name}.csr`)]);
    // prettier-ignore
    await ssl([
      "x509", "-req", "-in", p(`${name}.csr`), "-CA", pki.caCert, "-CAkey", pki.caKey,
      "-set_serial", String(Date.now()), "-days", "2", "-extfile", p(`${name}.ext`),
      "-out", p(`${name}.crt`),
    ]);
  };
  // 10.96.0.1 is the `kubernetes` Service's address in SERVICE_CIDR.
  await sign(
    "apiserver",
    "/CN=kube-apiserver",
    [
      "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      "",
    ].join("\n"),
  );
  await sign(
    "admin",
    "/O=system:masters/CN=kubernetes-admin",
    "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
  );
  await ssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", pki.serviceAccountKey]);
  await ssl(["ec", "-in", pki.serviceAccountKey, "-pubout", "-out", pki.serviceAccountPub]);
  return pki;
}

function writeKubeconfig(file: string, server: string, pki: Pki): void {
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "test", cluster: { server, "certificate-authority": pki.caCert } }],
    users: [
      {
        name: "admin",
        user: { "client-certificate": pki.adminCert, "client-key": pki.adminKey },
      },
    ],
    contexts: [{ name: "test", context: { cluster: "test", user: "admin", namespace: "default" } }],
    "current-context": "test",
  };
  fs.writeFileSync(file, YAML.stringify(config), { mode: 0o600 });
}

function nodeManifest(node: FakeNode): Record<string, unknown> {
  const allocatable = {
    cpu: node.cpu ?? "4",
    memory: node.memory ?? "8Gi",
    pods: String(node.pods ?? 110),
  };
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name: node.name,
      annotations: { [KWOK_NODE_ANNOTATION]: "fake", "node.alpha.kubernetes.io/ttl": "0" },
      labels: {
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "topology.kubernetes.io/zone": node.zone,
        type: "kwok",
      },
    },
    // A kubelet registers its node with capacity in the status; the API server keeps it on create.
    status: { allocatable, capacity: allocatable },
  };
}

/** GET over plain HTTP or HTTPS (certificate not verified: the components' own self-signed ones). */
function probe(url: string): Promise<ApiResponse> {
  const client = url.startsWith("https:") ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.get(url, { rejectUnauthorized: false, timeout: 2_000 }, (res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${url}: no answer within 2 s`)));
    req.on("error", reject);
  });
}

function tail(file: string, bytes: number): string {
  try {
    const fd = fs.openSync(file, "r");
    try {
      const size = fs.fstatSync(fd).size;
      const length = Math.min(size, bytes);
      const buffer = Buffer.alloc(length);
      fs.readSync(fd, buffer, 0, length, size - length);
      return buffer.toString();
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return "";
  }
}

/**
 * Starts the control plane, kwok and the fake nodes, and resolves once the API server is ready,
 * every node is Ready and untainted and the `default` service account exists. On failure the
 * components are stopped and the error carries their logs.
 */
export async function startK8sCluster(options: K8sClusterOptions): Promise<K8sCluster> {
  const missing = missingK8sTools();
  if (missing.length > 0) {
    throw new Error(
      `missing ${missing.join(", ")}: run \`bash scripts/ensure-tools.sh k8s\` (builds them into .tools/bin)`,
    );
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "k8s-test-"));
  const children = new Map<Component, ChildProcess>();
  const logFile = (name: Component): string => path.join(dir, `${name}.log`);
  const startupTimings = new Map<string, number>();
  let agent: https.Agent | undefined;
  let stopped: Promise<void> | undefined;

  const unregisterExit = onHostExit(() => fs.rmSync(dir, { recursive: true, force: true }));

  const logs = (bytes = 4_000): string =>
    [...children.keys()]
      .map((name) => `--- ${name} (${logFile(name)})\n${tail(logFile(name), bytes)}`)
      .join("\n");

  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      agent?.destroy();
      // Clients first, the store last, so nothing logs a storm of connection errors.
      const order: Component[][] = [
        ["kwok", "kube-scheduler", "kube-controller-manager"],
        ["kube-apiserver"],
        ["etcd"],
      ];
      for (const group of order) {
        await Promise.all(
          group.map((name) => {
            const child = children.get(name);
            return child === undefined ? undefined : terminate(child, 5_000);
          }),
        );
      }
      if (process.env.K8S_TEST_KEEP_DIR === "1") {
        console.log(`k8s test cluster directory kept: ${dir}`);
      } else {
        fs.rmSync(dir, { recursive: true, force: true });
      }
      unregisterExit();
    })();
    return stopped;
  };

  const launch = (name: Component, args: string[]): ChildProcess => {
    const out = fs.openSync(logFile(name), "a");
    try {
      const child = spawn(toolPath(name), args, { cwd: dir, stdio: ["ignore", out, out] });
      trackChild(child);
      child.on("error", (err) => fs.appendFileSync(logFile(name), `spawn error: ${err.message}\n`));
      children.set(name, child);
      return child;
    } finally {
      fs.closeSync(out);
    }
  };

  /** Waits for a component's health endpoint, failing at once if the process has died. */
  const waitHealthy = async (name: Component, url: string): Promise<void> => {
    await waitFor(`${name} at ${url}`, STARTUP_TIMEOUT_MS, async () => {
      const child = children.get(name);
      if (child !== undefined && !isRunning(child)) {
        throw new StopWaiting(`${name} exited with ${child.exitCode ?? child.signalCode}`);
      }
      const res = await probe(url);
      return res.status === 200 ? true : undefined;
    });
  };

  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    const value = await fn();
    startupTimings.set(name, Math.round(performance.now() - started));
    return value;
  };

  try {
    const pki = await step("certificates", () => createPki(dir));
    const [etcdPort, etcdPeerPort, apiPort, kcmPort, schedulerPort, kwokPort] = await Promise.all(
      Array.from({ length: 6 }, () => freePort()),
    );
    const server = `https://127.0.0.1:${apiPort}`;
    const kubeconfig = path.join(dir, "admin.kubeconfig");
    writeKubeconfig(kubeconfig, server, pki);
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const etcdPeerUrl = `http://127.0.0.1:${etcdPeerPort}`;

    const request = (method: string, apiPath: string, body?: unknown): Promise<ApiResponse> => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      return new Promise((resolve, reject) => {
        const req = https.request(
          {
            host: "127.0.0.1",
            port: apiPort,
            path: apiPath,
            method,
            agent,
            timeout: 10_000,
            headers: {
              accept: "application/json",
              ...(payload === undefined
                ? {}
                : {
                    "content-type": "application/json",
                    "content-length": Buffer.byteLength(payload),
                  }),
            },
          },
          (res) => {
            let text = "";
            res.on("data", (chunk: Buffer) => (text += chunk.toString()));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
            res.on("error", reject);
          },
        );
        req.on("timeout", () => req.destroy(new Error(`${method} ${apiPath}: no answer in 10 s`)));
        req.on("error", reject);
        req.end(payload);
      });
    };

    const get = async <T>(apiPath: string): Promise<T> => {
      const res = await request("GET", apiPath);
      if (res.status !== 200) throw new Error(`GET ${apiPath}: ${res.status} ${res.body}`);
      return JSON.parse(res.body) as T;
    };

    await step("etcd", async () => {
      launch("etcd", [
        "--name=test",
        `--data-dir=${path.join(dir, "etcd")}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${etcdPeerUrl}`,
        `--initial-advertise-peer-urls=${etcdPeerUrl}`,
        `--initial-cluster=test=${etcdPeerUrl}`,
        // The data is thrown away after the test; fsync would only slow every write down.
        "--unsafe-no-fsync",
        "--log-level=warn",
      ]);
      await waitHealthy("etcd", `${etcdUrl}/health`);
    });

    await step("kube-apiserver ready", async () => {
      launch("kube-apiserver", [
        `--etcd-servers=${etcdUrl}`,
        "--bind-address=127.0.0.1",
        `--secure-port=${apiPort}`,
        "--advertise-address=127.0.0.1",
        // The `kubernetes` Service's endpoints would be 127.0.0.1, which Endpoints refuse.
        "--endpoint-reconciler-type=none",
        `--tls-cert-file=${pki.servingCert}`,
        `--tls-private-key-file=${pki.servingKey}`,
        `--client-ca-file=${pki.caCert}`,
        "--authorization-mode=RBAC",
        `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
        `--service-account-key-file=${pki.serviceAccountPub}`,
        `--service-account-signing-key-file=${pki.serviceAccountKey}`,
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        `--cert-dir=${path.join(dir, "apiserver")}`,
        // Lean for a 2-core machine: no request fairness bookkeeping, no profiling endpoints.
        "--enable-priority-and-fairness=false",
        "--profiling=false",
        "--v=1",
      ]);
      const ca = fs.readFileSync(pki.caCert);
      const cert = fs.readFileSync(pki.adminCert);
      const key = fs.readFileSync(pki.adminKey);
      agent = new https.Agent({ ca, cert, key, keepAlive: true, maxSockets: 4 });
      await waitFor("kube-apiserver /readyz", STARTUP_TIMEOUT_MS, async () => {
        const child = children.get("kube-apiserver");
        if (child !== undefined && !isRunning(child)) {
          throw new StopWaiting(`kube-apiserver exited with ${child.exitCode ?? child.signalCode}`);
        }
        const res = await request("GET", "/readyz");
        return res.status === 200 ? true : undefined;
      });
    });

    // Clients get a private HOME-like state so nothing reads or writes the user's ~/.kube or Helm
    // repositories, and never the user's KUBECONFIG.
    const clientEnv: NodeJS.ProcessEnv = {
      ...process.env,
      KUBECONFIG: kubeconfig,
      KUBECACHEDIR: path.join(dir, "kube-cache"),
      HELM_CACHE_HOME: path.join(dir, "helm", "cache"),
      HELM_CONFIG_HOME: path.join(dir, "helm", "config"),
      HELM_DATA_HOME: path.join(dir, "helm", "data"),
    };
    const kubectl = (args: readonly string[], opts?: CommandOptions): Promise<CommandResult> =>
      runCommand("kubectl", args, { ...opts, env: clientEnv });
    const helm = (args: readonly string[], opts?: CommandOptions): Promise<CommandResult> =>
      runCommand("helm", args, { ...opts, env: clientEnv });

    // Component clients authenticate as the admin; delegated authn/authz for their own /healthz.
    const componentAuth = [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      "--bind-address=127.0.0.1",
      "--leader-elect=false",
    ];
    await step("controllers and kwok", async () => {
      launch("kube-controller-manager", [
        ...componentAuth,
        `--secure-port=${kcmPort}`,
        `--cert-dir=${path.join(dir, "kube-controller-manager")}`,
        `--controllers=${CONTROLLERS.join(",")}`,
        `--service-account-private-key-file=${pki.serviceAccountKey}`,
        `--root-ca-file=${pki.caCert}`,
        "--v=1",
      ]);
      launch("kube-scheduler", [
        ...componentAuth,
        `--secure-port=${schedulerPort}`,
        `--cert-dir=${path.join(dir, "kube-scheduler")}`,
        "--v=1",
      ]);
      launch("kwok", [
        `--kubeconfig=${kubeconfig}`,
        "--manage-all-nodes=false",
        `--manage-nodes-with-annotation-selector=${KWOK_NODE_ANNOTATION}=fake`,
        "--manage-nodes-with-label-selector=",
        // Addresses written into fake pod and node statuses; nothing is ever sent to them.
        "--cidr=10.244.0.1/16",
        "--node-ip=10.0.0.1",
        `--server-address=127.0.0.1:${kwokPort}`,
        ...(options.kwokConfig === undefined ? [] : [`--config=${options.kwokConfig}`]),
      ]);
      await Promise.all([
        waitHealthy("kube-controller-manager", `https://127.0.0.1:${kcmPort}/healthz`),
        waitHealthy("kube-scheduler", `https://127.0.0.1:${schedulerPort}/healthz`),
        waitHealthy("kwok", `http://127.0.0.1:${kwokPort}/healthz`),
      ]);
    });

    await step("nodes Ready", async () => {
      const manifests = options.nodes.map((node) => YAML.stringify(nodeManifest(node)));
      await kubectl(["apply", "-f", "-"], { input: manifests.join("---\n") });
      await waitFor("fake nodes Ready and untainted", STARTUP_TIMEOUT_MS, async () => {
        const list = await get<NodeListLike>("/api/v1/nodes");
        const ready = list.items.filter(
          (node) =>
            node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") &&
            (node.spec?.taints ?? []).length === 0,
        );
        return ready.length === options.nodes.length ? true : undefined;
      });
      await waitFor("the default service account", STARTUP_TIMEOUT_MS, async () => {
        const res = await request("GET", "/api/v1/namespaces/default/serviceaccounts/default");
        return res.status === 200 ? true : undefined;
      });
    });

    return {
      dir,
      kubeconfig,
      server,
      startupTimings,
      kubectl,
      helm,
      request,
      get,
      logs,
      stop,
    };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const detail = `${message}\n${logs()}`;
    await stop();
    throw new Error(`the Kubernetes test cluster did not start: ${detail}`, { cause: err });
  }
}

interface NodeListLike {
  items: {
    spec?: { taints?: unknown[] };
    status?: { conditions?: { type: string; status: string }[] };
  }[];
}
