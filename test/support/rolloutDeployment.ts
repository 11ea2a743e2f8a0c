/**
 * A Deployment of gateway processes behind haproxy, rolled the way Kubernetes' Deployment
 * controller rolls it with the chart's strategy:
 *
 * - a new pod joins the rotation only once the balancer's own readiness check has passed;
 * - it counts as available `minReadySeconds` after that;
 * - the new ReplicaSet grows while pods in total stay within `replicas + maxSurge`, the old one
 *   shrinks while available pods stay at least `replicas - maxUnavailable`;
 * - a pod being deleted leaves the rotation at once (endpoint removal), its preStop pause runs,
 *   then SIGTERM, and it must exit 0 within what is left of the grace period, else SIGKILL.
 *
 * Pods being deleted do not count against the surge (as in Kubernetes): the next new pod starts
 * while the previous old one still drains.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { Haproxy } from "./haproxy";
import { freePort } from "./ports";
import { isRunning, sleep, TailBuffer, terminate, trackChild, waitForExit } from "./process";
import { repoRoot, type RolloutPlan } from "./rolloutPlan";

export interface Pod {
  name: string;
  /** The haproxy server slot it occupies. */
  slot: string;
  port: number;
  adminPort: number;
  child: ChildProcess;
  output: TailBuffer;
  /** When haproxy's check first passed, ms since the epoch. */
  readyAt: number | undefined;
  /** The last /metrics text scraped from it. */
  metrics: string;
}

/** How one old pod went away. */
export interface Termination {
  pod: string;
  /** Exit code; null when it had to be killed. */
  exitCode: number | null;
  /** SIGTERM to exit, ms. */
  exitMs: number;
  /** What the grace period left after the preStop pause, ms. */
  budgetMs: number;
  inTime: boolean;
  /** Sessions open when SIGTERM came. */
  sessionsAtSigterm: number;
  /** Sessions closed by reason over the pod's life (`sse_sessions_closed_total`, last scrape). */
  closed: Record<string, number>;
}

/** Counter or gauge values by label set from Prometheus text, e.g. `{reason="drain"}` → 12. */
export function metricSamples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+)$/.exec(line);
    if (m && m[1] === name) out.set(m[2] ?? "", Number(m[3]));
  }
  return out;
}

function sample(text: string, name: string, labels = ""): number {
  return metricSamples(text, name).get(labels) ?? 0;
}

/** A counter's values keyed by one label's value. */
function byLabel(text: string, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [labels, n] of metricSamples(text, name)) {
    const key = new RegExp(`${label}="([^"]*)"`).exec(labels)?.[1] ?? labels;
    out[key] = (out[key] ?? 0) + n;
  }
  return out;
}

async function scrape(pod: Pod): Promise<string | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${pod.adminPort}/metrics`, {
      signal: AbortSignal.timeout(2_000),
    });
    const text = await res.text();
    if (res.status === 200) pod.metrics = text;
    return text;
  } catch {
    return undefined; // gone, or busy: the previous scrape stands
  }
}

export interface DeploymentOptions {
  plan: RolloutPlan;
  haproxy: Haproxy;
  /** Set over the chart's environment: NATS_URL, and what else the test environment needs. */
  env: Record<string, string>;
  log(line: string): void;
}

export class GatewayDeployment {
  /** Pods of the current ReplicaSet, in rotation. */
  private current: Pod[] = [];
  private readonly all: Pod[] = [];
  private readonly terminations: Array<Promise<Termination>> = [];
  private started = 0;
  private readonly main = path.join(repoRoot(), "dist", "src", "main.js");

  constructor(private readonly opts: DeploymentOptions) {
    if (!fs.existsSync(this.main)) {
      throw new Error(`${this.main} is missing: run \`npm run build\` first`);
    }
  }

  /** The first ReplicaSet: `replicas` pods at once, each joining the rotation when ready. */
  async create(): Promise<void> {
    const pods = await Promise.all(
      Array.from({ length: this.opts.plan.replicas }, () => this.startPod()),
    );
    await Promise.all(pods.map((p) => this.joinRotation(p)));
    this.current = pods;
  }

  /** One rolling update of every pod (what a changed pod template triggers). */
  async roll(): Promise<void> {
    const { replicas, maxSurge, maxUnavailable } = this.opts.plan;
    const old = [...this.current];
    const fresh: Pod[] = [];
    let available = 0;
    const pending = new Set<Promise<void>>();
    let failure: unknown;
    while (old.length > 0 || available < replicas) {
      if (failure !== undefined) throw failure;
      // Scale the new ReplicaSet up as far as the surge allows.
      while (fresh.length < replicas && old.length + fresh.length < replicas + maxSurge) {
        const pod = await this.startPod();
        fresh.push(pod);
        const becoming: Promise<void> = this.becomeAvailable(pod).then(
          () => {
            available++;
            pending.delete(becoming);
          },
          (err: unknown) => {
            failure ??= err;
            pending.delete(becoming);
          },
        );
        pending.add(becoming);
      }
      // Scale the old one down as far as availability allows.
      const canStop = Math.min(old.length, old.length + available - (replicas - maxUnavailable));
      if (canStop > 0) {
        for (const pod of old.splice(0, canStop)) this.terminations.push(this.delete(pod));
        continue;
      }
      if (pending.size === 0) throw new Error("rollout stuck: nothing to start, stop or wait for");
      await Promise.race(pending);
    }
    this.current = fresh;
  }

  /** Every deletion so far, once each pod has gone. */
  terminated(): Promise<Termination[]> {
    return Promise.all(this.terminations);
  }

  /** Sheds by reason over every pod, from each one's last scrape. */
  shedByReason(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const pod of this.all) {
      for (const [reason, n] of Object.entries(
        byLabel(pod.metrics, "sse_requests_shed_total", "reason"),
      )) {
        out[reason] = (out[reason] ?? 0) + n;
      }
    }
    return out;
  }

  /** Stops the current pods (after a last scrape) and kills anything still running. */
  async stop(): Promise<void> {
    await Promise.all(this.current.map((p) => scrape(p)));
    await Promise.all(this.all.map((p) => terminate(p.child, 10_000)));
  }

  private async startPod(): Promise<Pod> {
    const n = ++this.started;
    const slot = this.opts.haproxy.slots[n - 1];
    if (slot === undefined) throw new Error(`no haproxy slot left for pod ${n}`);
    const [port, adminPort] = [await freePort(), await freePort()];
    const output = new TailBuffer(64 * 1024);
    const child = spawn(process.execPath, [this.main], {
      env: {
        ...process.env,
        ...this.opts.plan.env,
        ...this.opts.env,
        PORT: String(port),
        ADMIN_PORT: String(adminPort),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    trackChild(child);
    child.stdout?.on("data", (chunk: Buffer) => output.push(chunk));
    child.stderr?.on("data", (chunk: Buffer) => output.push(chunk));
    child.on("error", (err) => output.push(`spawn error: ${err.message}\n`));
    const pod: Pod = {
      name: `gw-${n}`,
      slot,
      port,
      adminPort,
      child,
      output,
      readyAt: undefined,
      metrics: "",
    };
    this.all.push(pod);
    this.opts.log(`${pod.name} started (port ${port}, admin ${adminPort}, slot ${slot})`);
    return pod;
  }

  /**
   * Gives the pod its slot, in `drain` state: haproxy checks it but sends it nothing. (A server
   * leaving maintenance straight to `ready` is routed to before its first check.) Once haproxy's
   * check passes, `ready`: from then on haproxy's checks alone keep it in or out.
   */
  private async joinRotation(pod: Pod): Promise<void> {
    const { haproxy, plan } = this.opts;
    await haproxy.assign(pod.slot, pod.port, pod.adminPort);
    await haproxy.setState(pod.slot, "drain");
    const boundMs =
      (plan.startupBudgetSeconds + plan.readinessPeriodSeconds * plan.successThreshold) * 1000 +
      5_000;
    const deadline = Date.now() + boundMs;
    for (;;) {
      if (!isRunning(pod.child)) {
        throw new Error(`${pod.name} exited (code ${pod.child.exitCode}):\n${pod.output}`);
      }
      const server = (await haproxy.servers()).find((s) => s.name === pod.slot);
      if (server?.checkStatus === "L7OK" && server.status.startsWith("DRAIN")) break;
      if (Date.now() > deadline) {
        throw new Error(
          `${pod.name} not seen ready by haproxy within ${boundMs} ms (${JSON.stringify(server)}):\n${pod.output}`,
        );
      }
      await sleep(100);
    }
    pod.readyAt = Date.now();
    await haproxy.setState(pod.slot, "ready");
    this.opts.log(`${pod.name} ready and in rotation`);
  }

  /** Ready, then ready for minReadySeconds without dropping out of the rotation. */
  private async becomeAvailable(pod: Pod): Promise<void> {
    await this.joinRotation(pod);
    const { haproxy, plan } = this.opts;
    const minReadyMs = plan.minReadySeconds * 1000;
    let since = pod.readyAt ?? Date.now();
    const deadline = since + minReadyMs + 60_000;
    for (;;) {
      const server = (await haproxy.servers()).find((s) => s.name === pod.slot);
      if (!server?.status.startsWith("UP")) since = Date.now();
      else if (Date.now() - since >= minReadyMs) break;
      if (Date.now() > deadline) throw new Error(`${pod.name} never stayed ready ${minReadyMs} ms`);
      await sleep(Math.min(250, Math.max(50, minReadyMs / 4)));
    }
    this.opts.log(`${pod.name} available`);
  }

  /** Pod deletion; never rejects (a failure is a termination that did not go well). */
  private delete(pod: Pod): Promise<Termination> {
    return this.deleteNow(pod).catch((err: unknown) => {
      this.opts.log(`${pod.name}: deletion failed: ${String(err)}`);
      pod.child.kill("SIGKILL");
      return {
        pod: pod.name,
        exitCode: null,
        exitMs: NaN,
        budgetMs: NaN,
        inTime: false,
        sessionsAtSigterm: 0,
        closed: {},
      };
    });
  }

  /** Out of the endpoints, preStop, SIGTERM, exit within what is left of the grace period. */
  private async deleteNow(pod: Pod): Promise<Termination> {
    const { haproxy, plan } = this.opts;
    const deletedAt = Date.now();
    await haproxy.setState(pod.slot, "maint");
    this.opts.log(`${pod.name} out of rotation; preStop ${plan.preStopSeconds} s`);
    await sleep(Math.max(0, plan.preStopSeconds * 1000 - (Date.now() - deletedAt)));
    const before = (await scrape(pod)) ?? "";
    const sigtermAt = Date.now();
    pod.child.kill("SIGTERM");
    const budgetMs = plan.gracePeriodSeconds * 1000 - (sigtermAt - deletedAt);
    // The admin port answers until the very end; its last scrape holds the drain's totals.
    let scraping = true;
    const scraper = (async () => {
      while (scraping && isRunning(pod.child)) {
        await scrape(pod);
        await sleep(100);
      }
    })();
    const code = await waitForExit(pod.child, budgetMs);
    const exitMs = Date.now() - sigtermAt;
    scraping = false;
    await scraper;
    if (code === "timeout") {
      pod.child.kill("SIGKILL"); // what the kubelet does when the grace period ends
      await waitForExit(pod.child, 5_000);
    }
    const t: Termination = {
      pod: pod.name,
      exitCode: code === "timeout" ? null : code,
      exitMs,
      budgetMs,
      inTime: code !== "timeout",
      sessionsAtSigterm: sample(before, "sse_sessions"),
      closed: byLabel(pod.metrics, "sse_sessions_closed_total", "reason"),
    };
    this.opts.log(
      `${pod.name} exited ${t.exitCode} after ${exitMs} ms (budget ${budgetMs} ms), ` +
        `${t.sessionsAtSigterm} sessions at SIGTERM, closed: ${JSON.stringify(t.closed)}`,
    );
    if (t.exitCode !== 0)
      this.opts.log(`${pod.name} output:\n${pod.output.toString().slice(-4096)}`);
    return t;
  }
}
