/**
 * Debian's haproxy as the load balancer in front of several gateway instances: round robin,
 * HTTP mode with `X-Forwarded-For`, health checks on each instance's admin `/readyz` (what a
 * Kubernetes Service does with readiness), and the runtime API over a stats socket so servers
 * join and leave the rotation while clients stream.
 *
 * Servers are predefined slots, all starting in maintenance with a placeholder address; a slot
 * is given an instance's ports at runtime. A slot is used once: its check status then always
 * describes its own instance, never a predecessor's.
 */
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { freePort } from "./ports";
import { isRunning, onHostExit, sleep, spawnTracked, terminate } from "./process";

/** Health checks: the kubelet's readiness probe, spelled for haproxy. */
export interface HaproxyHealthCheck {
  /** `option httpchk GET <path>`. */
  path: string;
  /** `inter`: the probe's periodSeconds, in ms. */
  intervalMs: number;
  /** `timeout check`: the probe's timeoutSeconds, in ms. */
  timeoutMs: number;
  /** `fall`: the probe's failureThreshold. */
  fall: number;
  /** `rise`: the probe's successThreshold. */
  rise: number;
}

export interface HaproxyOptions {
  /** Server slots predefined in the backend, `g1` … `g<slots>`, all in maintenance at start. */
  slots: number;
  health: HaproxyHealthCheck;
  /**
   * Concurrent client connections haproxy accepts (global and frontend `maxconn`). haproxy
   * needs two descriptors per connection and refuses to start above the hard RLIMIT_NOFILE.
   */
  maxConnections: number;
  /**
   * `timeout client/server/tunnel` in ms. An SSE response is one long transfer whose only
   * traffic may be the gateway's heartbeats, so it must exceed HEARTBEAT_MS by far.
   */
  streamTimeoutMs: number;
}

/** One server line of `show stat`. */
export interface HaproxyServer {
  name: string;
  /** `UP`, `DOWN`, `MAINT`, `DRAIN`, `no check`, possibly with a transition suffix (`UP 1/2`). */
  status: string;
  /** Last check result: empty or `INI` before the first check, then `L7OK`, `L7STS`, `L4CON`… */
  checkStatus: string;
  /** Sessions open on the server now. */
  sessions: number;
  /** Sessions the server has had in total. */
  totalSessions: number;
}

export type HaproxyServerState = "ready" | "drain" | "maint";

export interface Haproxy {
  /** The frontend clients connect to, `http://127.0.0.1:<port>`. */
  url: string;
  port: number;
  backend: string;
  /** Slot names in configuration order. */
  slots: string[];
  /** Sends one runtime API command; resolves with haproxy's answer (empty on success). */
  command(cmd: string): Promise<string>;
  /** Points a slot at an instance's public port, and its health checks at the admin port. */
  assign(slot: string, port: number, checkPort: number): Promise<void>;
  setState(slot: string, state: HaproxyServerState): Promise<void>;
  servers(): Promise<HaproxyServer[]>;
  /** The last 64 KB of haproxy's own output (state changes are logged as warnings). */
  logs(): string;
  stop(): Promise<void>;
}

export const BACKEND = "gateways";

/** The haproxy binary: HAPROXY_BIN, Debian's /usr/sbin/haproxy, else `haproxy` on PATH. */
export function haproxyBinary(): string {
  const fromEnv = process.env.HAPROXY_BIN;
  if (fromEnv) return fromEnv;
  return fs.existsSync("/usr/sbin/haproxy") ? "/usr/sbin/haproxy" : "haproxy";
}

export function slotNames(slots: number): string[] {
  return Array.from({ length: slots }, (_, i) => `g${i + 1}`);
}

/** The configuration file: pure, so what the balancer does can be read in one place. */
export function haproxyConfig(opts: HaproxyOptions, port: number, socketPath: string): string {
  const h = opts.health;
  const t = `${opts.streamTimeoutMs}ms`;
  // Placeholder address for slots not yet given an instance; `disabled` starts them in
  // maintenance, where haproxy neither routes to them nor checks them.
  const check = `check inter ${h.intervalMs} fall ${h.fall} rise ${h.rise}`;
  const servers = slotNames(opts.slots).map(
    (name) => `  server ${name} 127.0.0.1:1 ${check} port 1 disabled`,
  );
  return [
    "global",
    `  maxconn ${opts.maxConnections}`,
    `  stats socket ${socketPath} level admin`,
    "  stats timeout 30s",
    "",
    "defaults",
    "  mode http",
    // The gateway (TRUST_PROXY=true) takes the client address for its per-client limit from
    // the last X-Forwarded-For entry, which haproxy appends.
    "  option forwardfor",
    // Frames are small and latency matters: no Nagle delay on either side.
    "  option http-no-delay",
    "  timeout connect 2s",
    "  timeout http-request 10s",
    "  timeout http-keep-alive 10s",
    `  timeout client ${t}`,
    `  timeout server ${t}`,
    `  timeout tunnel ${t}`,
    `  timeout check ${h.timeoutMs}ms`,
    "",
    "frontend sse",
    `  bind 127.0.0.1:${port}`,
    `  maxconn ${opts.maxConnections}`,
    `  default_backend ${BACKEND}`,
    "",
    `backend ${BACKEND}`,
    // No affinity of any kind: each request goes to the next server in rotation.
    "  balance roundrobin",
    `  option httpchk GET ${h.path}`,
    "  http-check expect status 200",
    ...servers,
    "",
  ].join("\n");
}

/** Starts haproxy in the foreground (`-db`) with a generated configuration in a temp dir. */
export async function startHaproxy(opts: HaproxyOptions): Promise<Haproxy> {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), "jsgw-haproxy-"));
  const forgetDir = onHostExit(() => fs.rmSync(dir, { recursive: true, force: true }));
  const fdLimit = hardFileLimit();
  if (fdLimit !== undefined && opts.maxConnections * 2 + 100 > fdLimit) {
    throw new Error(
      `haproxy: maxconn ${opts.maxConnections} needs ~${opts.maxConnections * 2 + 100} file ` +
        `descriptors, the hard limit is ${fdLimit}`,
    );
  }
  const port = await freePort();
  const socketPath = path.join(dir, "haproxy.sock");
  const configPath = path.join(dir, "haproxy.cfg");
  await fs.promises.writeFile(configPath, haproxyConfig(opts, port, socketPath));
  const bin = haproxyBinary();
  const { child, output, spawnError } = spawnTracked(bin, ["-db", "-f", configPath]);

  const command = (cmd: string): Promise<string> => runtimeCommand(socketPath, cmd);
  const cleanUp = async (): Promise<void> => {
    await terminate(child, 5_000);
    await fs.promises.rm(dir, { recursive: true, force: true });
    forgetDir();
  };

  const deadline = Date.now() + 15_000;
  for (;;) {
    const failed = spawnError();
    if (failed || !isRunning(child)) {
      await cleanUp();
      const why = failed ? failed.message : `exited with ${child.exitCode}`;
      throw new Error(`haproxy (${bin}) did not start: ${why}\n${output}`);
    }
    try {
      if ((await command("show info")).includes("Name: HAProxy")) break;
    } catch {
      // The socket appears once the configuration is loaded.
    }
    if (Date.now() > deadline) {
      await cleanUp();
      throw new Error(`haproxy's stats socket did not answer within 15 s\n${output}`);
    }
    await sleep(50);
  }

  const expectEmpty = async (cmd: string): Promise<void> => {
    const answer = (await command(cmd)).trim();
    // Address changes are acknowledged with a sentence; everything else answers nothing.
    if (answer !== "" && !/changed from|no need to change/.test(answer)) {
      throw new Error(`haproxy refused \`${cmd}\`: ${answer}`);
    }
  };

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    backend: BACKEND,
    slots: slotNames(opts.slots),
    command,
    assign: async (slot, serverPort, checkPort) => {
      await expectEmpty(`set server ${BACKEND}/${slot} addr 127.0.0.1 port ${serverPort}`);
      await expectEmpty(`set server ${BACKEND}/${slot} check-port ${checkPort}`);
    },
    setState: (slot, state) => expectEmpty(`set server ${BACKEND}/${slot} state ${state}`),
    servers: async () => parseServers(await command(`show stat -1 4 -1`)),
    logs: () => output.toString(),
    stop: cleanUp,
  };
}

/** The hard limit on open files (Linux /proc), which haproxy may raise its own soft limit to. */
function hardFileLimit(): number | undefined {
  try {
    const m = /^Max open files\s+\S+\s+(\d+)/m.exec(fs.readFileSync("/proc/self/limits", "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** One command over the stats socket in non-interactive mode: haproxy answers, then closes. */
function runtimeCommand(socketPath: string, cmd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let answer = "";
    socket.setEncoding("utf8");
    socket.setTimeout(5_000, () => socket.destroy(new Error(`haproxy: no answer to \`${cmd}\``)));
    socket.on("connect", () => socket.write(`${cmd}\n`));
    socket.on("data", (chunk: string) => (answer += chunk));
    socket.on("error", reject);
    socket.on("end", () => resolve(answer));
  });
}

/** Parses `show stat` CSV (its first line is the `# pxname,svname,…` header). */
export function parseServers(csv: string): HaproxyServer[] {
  const lines = csv.split("\n").filter((l) => l.trim() !== "");
  const header = (lines.shift() ?? "").replace(/^# /, "").split(",");
  const col = (name: string): number => {
    const i = header.indexOf(name);
    if (i < 0) throw new Error(`haproxy show stat: no column ${name} in ${header.join(",")}`);
    return i;
  };
  const [svname, status, check, scur, stot] = [
    col("svname"),
    col("status"),
    col("check_status"),
    col("scur"),
    col("stot"),
  ];
  return lines.map((line) => {
    const f = line.split(",");
    return {
      name: f[svname] ?? "",
      status: f[status] ?? "",
      checkStatus: f[check] ?? "",
      sessions: Number(f[scur] ?? 0),
      totalSessions: Number(f[stot] ?? 0),
    };
  });
}
