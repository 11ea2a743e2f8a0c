import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment" with {
  "resolution-mode": "import",
};
import type { IReplicaSetList } from "kubernetes-models/apps/v1/ReplicaSetList" with {
  "resolution-mode": "import",
};
import type { IConfigMap } from "kubernetes-models/v1/ConfigMap" with {
  "resolution-mode": "import",
};
import type { IPod } from "kubernetes-models/v1/Pod" with { "resolution-mode": "import" };
import type { IPodList } from "kubernetes-models/v1/PodList" with { "resolution-mode": "import" };
import type { IPodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget" with {
  "resolution-mode": "import",
};
import { startK8sCluster, waitFor, type FakeNode, type K8sCluster } from "../support/k8sCluster";
import { sleep } from "../support/process";

// The chart installed for real on a Kubernetes control plane whose nodes are kwok's fakes: the
// API server validates and defaults every object, the Deployment controller rolls, the scheduler
// places, the disruption controller and the eviction API enforce the budget. No container runs.

const REPO_ROOT = path.resolve(__dirname, "..", "..");
const CHART = path.join(REPO_ROOT, "helm", "jetstream-sse-gateway");
const VALUES_FILE = path.join(REPO_ROOT, "helm", "ci", "k8s.yaml");
const KWOK_CONFIG = path.join(REPO_ROOT, "helm", "ci", "k8s-kwok.yaml");

const RELEASE = "gw";
const NAMESPACE = "sse";
const FULLNAME = `${RELEASE}-jetstream-sse-gateway`;
const SELECTOR = `app.kubernetes.io/name=jetstream-sse-gateway,app.kubernetes.io/instance=${RELEASE}`;
const NODES: readonly FakeNode[] = [
  { name: "kwok-a", zone: "zone-a" },
  { name: "kwok-b", zone: "zone-b" },
  { name: "kwok-c", zone: "zone-c" },
];
const POLL_MS = 150;

interface CiValues {
  replicaCount: number;
  rollout: { maxSurge: number };
  podDisruptionBudget: { maxUnavailable: number };
}
const values = YAML.parse(fs.readFileSync(VALUES_FILE, "utf8")) as CiValues;
const REPLICAS = values.replicaCount;
const MAX_SURGE = values.rollout.maxSurge;
const PDB_MAX_UNAVAILABLE = values.podDisruptionBudget.maxUnavailable;

const HELM_ARGS = [CHART, "--namespace", NAMESPACE, "--values", VALUES_FILE];

let cluster: K8sCluster;
const timings = new Map<string, number>();
/** What each phase observed, printed with the timings. */
const observations: string[] = [];

async function timed<T>(phase: string, fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await fn();
  } finally {
    timings.set(phase, Math.round(performance.now() - started));
  }
}

const api = {
  pods: `/api/v1/namespaces/${NAMESPACE}/pods`,
  deployment: `/apis/apps/v1/namespaces/${NAMESPACE}/deployments/${FULLNAME}`,
  replicaSets: `/apis/apps/v1/namespaces/${NAMESPACE}/replicasets`,
  pdb: `/apis/policy/v1/namespaces/${NAMESPACE}/poddisruptionbudgets/${FULLNAME}`,
  configMap: `/api/v1/namespaces/${NAMESPACE}/configmaps/${FULLNAME}`,
};

/** The Deployment's pods: the release's labels and owned by a ReplicaSet (not the test pod). */
async function gatewayPods(): Promise<IPod[]> {
  const list = await cluster.get<IPodList>(
    `${api.pods}?labelSelector=${encodeURIComponent(SELECTOR)}`,
  );
  return list.items.filter((pod) =>
    (pod.metadata?.ownerReferences ?? []).some((ref) => ref.kind === "ReplicaSet"),
  );
}

const isTerminating = (pod: IPod): boolean => pod.metadata?.deletionTimestamp !== undefined;
const isReady = (pod: IPod): boolean =>
  !isTerminating(pod) &&
  (pod.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");
const templateHash = (pod: IPod): string => pod.metadata?.labels?.["pod-template-hash"] ?? "";
const nodeOf = (pod: IPod): string => pod.spec?.nodeName ?? "";

function describePods(pods: readonly IPod[]): string {
  return pods
    .map(
      (p) =>
        `${p.metadata?.name} node=${nodeOf(p) || "-"} phase=${p.status?.phase} ready=${isReady(p)}` +
        ` hash=${templateHash(p)}${isTerminating(p) ? " terminating" : ""}`,
    )
    .join("\n");
}

/** Resolves once the Deployment's latest generation is fully rolled out and available. */
async function waitForDeploymentAvailable(timeoutMs: number): Promise<IDeployment> {
  return waitFor(`deployment ${FULLNAME} available`, timeoutMs, async () => {
    const deployment = await cluster.get<IDeployment>(api.deployment);
    const status = deployment.status ?? {};
    const done =
      (status.observedGeneration ?? 0) >= (deployment.metadata?.generation ?? 1) &&
      status.replicas === REPLICAS &&
      status.updatedReplicas === REPLICAS &&
      status.readyReplicas === REPLICAS &&
      status.availableReplicas === REPLICAS;
    if (!done) return undefined;
    const pods = await gatewayPods();
    return pods.length === REPLICAS && pods.every(isReady) ? deployment : undefined;
  });
}

async function waitForBudget(
  expect: { currentHealthy: number; disruptionsAllowed: number },
  timeoutMs: number,
): Promise<IPodDisruptionBudget> {
  return waitFor(`PDB ${JSON.stringify(expect)}`, timeoutMs, async () => {
    const pdb = await cluster.get<IPodDisruptionBudget>(api.pdb);
    const status = pdb.status;
    return status !== undefined &&
      status.observedGeneration === pdb.metadata?.generation &&
      status.currentHealthy === expect.currentHealthy &&
      status.disruptionsAllowed === expect.disruptionsAllowed
      ? pdb
      : undefined;
  });
}

/** The pod-template-hash of the Deployment's newest ReplicaSet. */
async function newestTemplateHash(): Promise<string> {
  const list = await cluster.get<IReplicaSetList>(
    `${api.replicaSets}?labelSelector=${encodeURIComponent(SELECTOR)}`,
  );
  const revision = (rs: (typeof list.items)[number]): number =>
    Number(rs.metadata?.annotations?.["deployment.kubernetes.io/revision"] ?? 0);
  const newest = [...list.items].sort((a, b) => revision(b) - revision(a))[0];
  return newest?.metadata?.labels?.["pod-template-hash"] ?? "";
}

interface PodSample {
  /** Ready and not terminating. */
  ready: number;
  /** Not terminating, whatever their state. */
  active: number;
  terminating: number;
  pods: string;
}

/** Samples the Deployment's pods every POLL_MS until stopped. */
function samplePods(): { stop(): Promise<PodSample[]> } {
  const samples: PodSample[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      const pods = await gatewayPods();
      samples.push({
        ready: pods.filter(isReady).length,
        active: pods.filter((p) => !isTerminating(p)).length,
        terminating: pods.filter(isTerminating).length,
        pods: describePods(pods),
      });
      await sleep(Math.max(0, POLL_MS - (performance.now() - started)));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return samples;
    },
  };
}

const output = (r: { stdout: string; stderr: string }): string => `${r.stdout}\n${r.stderr}`;

describe("the chart on a Kubernetes control plane with kwok nodes", () => {
  beforeAll(async () => {
    cluster = await timed("control plane startup", () =>
      startK8sCluster({ nodes: NODES, kwokConfig: KWOK_CONFIG }),
    );
  }, 240_000);

  afterAll(async () => {
    await cluster?.stop();
    const lines = [...timings].map(
      ([phase, ms]) => `  ${phase.padEnd(28)} ${(ms / 1000).toFixed(1)} s`,
    );
    const startup = [...(cluster?.startupTimings ?? [])].map(
      ([step, ms]) => `    ${step.padEnd(26)} ${(ms / 1000).toFixed(1)} s`,
    );
    console.log(
      [
        "k8s phase timings:",
        ...lines,
        "  startup steps:",
        ...startup,
        "observed:",
        ...observations.map((o) => `  ${o}`),
      ].join("\n"),
    );
  }, 60_000);

  it("install - the API server accepts every object and all replicas become Ready, spread over the zones", async () => {
    await timed("helm install --wait", () =>
      cluster.helm(
        ["install", RELEASE, ...HELM_ARGS, "--create-namespace", "--wait", "--timeout", "180s"],
        { timeoutMs: 200_000 },
      ),
    );
    const deployment = await waitForDeploymentAvailable(60_000);
    expect(deployment.spec?.strategy?.type).toBe("RollingUpdate");
    expect(String(deployment.spec?.strategy?.rollingUpdate?.maxUnavailable)).toBe("0");
    expect(String(deployment.spec?.strategy?.rollingUpdate?.maxSurge)).toBe(String(MAX_SURGE));
    // Defaulted by the API server, not written by the chart.
    expect(deployment.spec?.progressDeadlineSeconds).toBe(600);

    const pods = await gatewayPods();
    expect(pods).toHaveLength(REPLICAS);
    expect(pods.every((p) => p.status?.phase === "Running" && isReady(p))).toBe(true);
    // The chart's default soft spread over hostnames and zones: one pod per zone while every
    // node has room.
    const keys = pods[0]?.spec?.topologySpreadConstraints?.map((c) => c.topologyKey);
    expect(keys).toEqual(
      expect.arrayContaining(["kubernetes.io/hostname", "topology.kubernetes.io/zone"]),
    );
    const zones = new Set(pods.map((p) => NODES.find((n) => n.name === nodeOf(p))?.zone));
    expect({ zones: zones.size, pods: describePods(pods) }).toEqual({
      zones: Math.min(REPLICAS, NODES.length),
      pods: expect.any(String),
    });

    const pdb = await waitForBudget(
      { currentHealthy: REPLICAS, disruptionsAllowed: PDB_MAX_UNAVAILABLE },
      30_000,
    );
    expect(String(pdb.spec?.maxUnavailable)).toBe(String(PDB_MAX_UNAVAILABLE));
    expect(pdb.status?.desiredHealthy).toBe(REPLICAS - PDB_MAX_UNAVAILABLE);
    observations.push(
      `install: ${REPLICAS} pods Ready on ${[...new Set(pods.map(nodeOf))].join(", ")}; ` +
        `PDB disruptionsAllowed ${pdb.status?.disruptionsAllowed}`,
    );
  }, 240_000);

  it("helm test - the connection test pod is admitted and reported Succeeded", async () => {
    const result = await timed("helm test", () =>
      cluster.helm(["test", RELEASE, "--namespace", NAMESPACE, "--timeout", "60s"], {
        timeoutMs: 90_000,
        allowFailure: true,
      }),
    );
    expect({ code: result.code, output: output(result) }).toEqual({
      code: 0,
      output: expect.stringMatching(/Phase:\s+Succeeded/),
    });
    const suites = [...result.stdout.matchAll(/^TEST SUITE:\s+(\S+)$/gm)]
      .map((m) => m[1] ?? "")
      .filter((name) => name !== "None");
    expect(suites.length).toBeGreaterThan(0);
    for (const name of suites) {
      const res = await cluster.request("GET", `${api.pods}/${name}`);
      // A hook-delete-policy of hook-succeeded removes the pod once it passed; otherwise it stays.
      if (res.status === 404) continue;
      const pod = JSON.parse(res.body) as IPod;
      expect(pod.metadata?.annotations?.["helm.sh/hook"]).toMatch(/test/);
      expect(pod.status?.phase).toBe("Succeeded");
    }
    observations.push(`helm test: ${suites.join(", ")} Succeeded`);
    // The finished test pod never counts as a healthy replica of the budget.
    await waitForBudget(
      { currentHealthy: REPLICAS, disruptionsAllowed: PDB_MAX_UNAVAILABLE },
      30_000,
    );
  }, 120_000);

  it("upgrade - a config change rolls every pod, never fewer Ready than replicas nor more than replicas + maxSurge", async () => {
    const before = await cluster.get<IDeployment>(api.deployment);
    const oldHash = await newestTemplateHash();
    const oldAnnotations = before.spec?.template.metadata?.annotations ?? {};

    const sampler = samplePods();
    let samples: PodSample[] = [];
    await timed("upgrade rollout", async () => {
      try {
        await cluster.helm(
          [
            "upgrade",
            RELEASE,
            ...HELM_ARGS,
            "--set",
            "config.heartbeatMs=20000",
            "--wait",
            "--timeout",
            "180s",
          ],
          { timeoutMs: 200_000 },
        );
        await waitFor("every pod on the new template", 120_000, async () => {
          const newHash = await newestTemplateHash();
          const pods = await gatewayPods();
          const done =
            newHash !== oldHash &&
            pods.length === REPLICAS &&
            pods.every((p) => isReady(p) && templateHash(p) === newHash);
          return done ? true : undefined;
        });
      } finally {
        samples = await sampler.stop();
      }
    });

    const configMap = await cluster.get<IConfigMap>(api.configMap);
    expect(Object.values(configMap.data ?? {}).join("\n")).toContain("20000");
    const after = await waitForDeploymentAvailable(30_000);
    // The pod template changed only through the config checksum annotation.
    const { "checksum/config": oldChecksum, ...oldRest } = oldAnnotations;
    const { "checksum/config": newChecksum, ...newRest } =
      after.spec?.template.metadata?.annotations ?? {};
    expect(newChecksum).toEqual(expect.any(String));
    expect(newChecksum).not.toBe(oldChecksum);
    expect(newRest).toEqual(oldRest);

    const newHash = await newestTemplateHash();
    const pods = await gatewayPods();
    expect(pods.map(templateHash)).toEqual(Array<string>(REPLICAS).fill(newHash));
    expect(newHash).not.toBe(oldHash);

    expect(samples.length).toBeGreaterThan(10);
    const fewestReady = samples.reduce((a, b) => (b.ready < a.ready ? b : a));
    const mostActive = samples.reduce((a, b) => (b.active > a.active ? b : a));
    expect({ fewestReady: fewestReady.ready, pods: fewestReady.pods }).toEqual({
      fewestReady: REPLICAS,
      pods: expect.any(String),
    });
    expect({ mostActive: mostActive.active, pods: mostActive.pods }).toEqual({
      mostActive: REPLICAS + MAX_SURGE,
      pods: expect.any(String),
    });

    const status = await cluster.helm(["status", RELEASE, "--namespace", NAMESPACE, "-o", "json"]);
    const release = JSON.parse(status.stdout) as { version: number; info: { status: string } };
    expect({ version: release.version, status: release.info.status }).toEqual({
      version: 2,
      status: "deployed",
    });
    observations.push(
      `upgrade: ${samples.length} samples; Ready pods never below ${fewestReady.ready}, ` +
        `at most ${mostActive.active} pods; template ${oldHash} -> ${newHash}`,
    );
  }, 300_000);

  it("drain - the disruption budget lets one pod go, answers 429 for the next, and the drain completes once replacements are Ready elsewhere", async () => {
    const [target, ...others] = NODES.map((n) => n.name) as [string, ...string[]];
    await timed("drain", async () => {
      // Gather every replica on the target node: cordon the others and restart the rollout.
      for (const node of others) await cluster.kubectl(["cordon", node]);
      await cluster.kubectl(["rollout", "restart", `deployment/${FULLNAME}`, "-n", NAMESPACE]);
      await cluster.kubectl(
        ["rollout", "status", `deployment/${FULLNAME}`, "-n", NAMESPACE, "--timeout=180s"],
        { timeoutMs: 200_000 },
      );
      await waitFor(`all replicas on ${target}`, 60_000, async () => {
        const pods = await gatewayPods();
        return pods.length === REPLICAS && pods.every((p) => isReady(p) && nodeOf(p) === target)
          ? true
          : undefined;
      });
      await waitForBudget(
        { currentHealthy: REPLICAS, disruptionsAllowed: PDB_MAX_UNAVAILABLE },
        30_000,
      );

      // The first eviction spends the budget; the replacement cannot schedule (every node is
      // cordoned now), so the other evictions are refused until the drain gives up.
      const blocked = await cluster.kubectl(
        ["drain", target, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=12s"],
        { allowFailure: true, timeoutMs: 60_000 },
      );
      expect({ failed: blocked.code !== 0, output: output(blocked) }).toEqual({
        failed: true,
        output: expect.stringContaining(
          "Cannot evict pod as it would violate the pod's disruption budget",
        ),
      });
      const pods = await gatewayPods();
      const onTarget = pods.filter((p) => nodeOf(p) === target && isReady(p));
      const pending = pods.filter((p) => nodeOf(p) === "");
      expect({
        onTarget: onTarget.length,
        pending: pending.length,
        pods: describePods(pods),
      }).toEqual({
        onTarget: REPLICAS - PDB_MAX_UNAVAILABLE,
        pending: PDB_MAX_UNAVAILABLE,
        pods: expect.any(String),
      });
      const pdb = await waitForBudget(
        { currentHealthy: REPLICAS - PDB_MAX_UNAVAILABLE, disruptionsAllowed: 0 },
        30_000,
      );
      expect(pdb.status?.desiredHealthy).toBe(REPLICAS - PDB_MAX_UNAVAILABLE);
      expect(pdb.status?.expectedPods).toBe(REPLICAS);

      // The eviction API itself answers 429 Too Many Requests while the budget is spent.
      const victim = onTarget[0]?.metadata?.name ?? "";
      const eviction = await cluster.request("POST", `${api.pods}/${victim}/eviction`, {
        apiVersion: "policy/v1",
        kind: "Eviction",
        metadata: { name: victim, namespace: NAMESPACE },
      });
      expect({ status: eviction.status, body: eviction.body }).toEqual({
        status: 429,
        body: expect.stringContaining("disruption budget"),
      });
      const refusal = blocked.stderr.match(/error when evicting .*disruption budget/g) ?? [];
      observations.push(
        `drain: ${refusal.length} eviction(s) refused during a 12 s drain; PDB currentHealthy ` +
          `${pdb.status?.currentHealthy}/${pdb.status?.desiredHealthy}, disruptionsAllowed ` +
          `${pdb.status?.disruptionsAllowed}; POST eviction -> ${eviction.status}`,
      );

      // Room elsewhere: the replacement schedules, becomes Ready, and the drain can finish, one
      // eviction at a time, never leaving fewer Ready pods than the budget's floor.
      for (const node of others) await cluster.kubectl(["uncordon", node]);
      await waitForDeploymentAvailable(60_000);
      await waitForBudget(
        { currentHealthy: REPLICAS, disruptionsAllowed: PDB_MAX_UNAVAILABLE },
        30_000,
      );
      const sampler = samplePods();
      let samples: PodSample[];
      try {
        await cluster.kubectl(
          ["drain", target, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=120s"],
          { timeoutMs: 150_000 },
        );
      } finally {
        samples = await sampler.stop();
      }
      const fewestReady = samples.reduce((a, b) => (b.ready < a.ready ? b : a));
      const floor = REPLICAS - PDB_MAX_UNAVAILABLE;
      expect({ atLeastFloor: fewestReady.ready >= floor, sample: fewestReady }).toEqual({
        atLeastFloor: true,
        sample: expect.any(Object),
      });
      const drained = await waitForDeploymentAvailable(60_000);
      expect(drained.status?.availableReplicas).toBe(REPLICAS);
      const after = await gatewayPods();
      expect(after.filter((p) => nodeOf(p) === target)).toEqual([]);
      observations.push(
        `drain after uncordoning the others: completed; Ready pods never below ` +
          `${fewestReady.ready} (${samples.length} samples); pods now on ` +
          `${[...new Set(after.map(nodeOf))].join(", ")}`,
      );
      await cluster.kubectl(["uncordon", target]);
    });
  }, 420_000);
});
