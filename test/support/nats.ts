import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import type { StartedTestContainer } from "testcontainers";
import { freePort } from "./ports";
import {
  isRunning,
  onHostExit,
  sleep,
  TailBuffer,
  terminate,
  trackChild,
  waitForExit,
} from "./process";

export interface NatsHandle {
  url: string;
  port: number;
  /** Stops the server, keeping its JetStream store for a later start(). */
  stop(): Promise<void>;
  /** Kills the server with SIGKILL (no shutdown at all), keeping its store for a later start(). */
  kill(): Promise<void>;
  /** Starts it again at the same URL with the same store. */
  start(): Promise<void>;
  restart(): Promise<void>;
  /** Stops for good and deletes the store. */
  close(): Promise<void>;
}

const REPO_ROOT = path.resolve(__dirname, "..", "..");
const READY_TIMEOUT_MS = 15_000;
const CONTAINER_IMAGE = "nats:2.11-alpine";
const CONTAINER_NATS_PORT = 4222;

let runtimeProbe: Promise<boolean> | undefined;

/** Whether a container engine answers, checked once per Jest worker (the probe costs ~0.5 s). */
async function containerRuntimeReachable(): Promise<boolean> {
  runtimeProbe ??= (async () => {
    let timer: NodeJS.Timeout | undefined;
    try {
      // Imported lazily: local-only runs never pay for loading testcontainers.
      const { getContainerRuntimeClient } = await import("testcontainers");
      const timeout = new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), 5_000);
      });
      return await Promise.race([getContainerRuntimeClient().then(() => true), timeout]);
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  })();
  return runtimeProbe;
}

/** NATS_TEST_MODE=local|container forces a mode; otherwise containers when an engine is reachable. */
export async function natsServerMode(): Promise<"local" | "container"> {
  const forced = process.env.NATS_TEST_MODE;
  if (forced === "local" || forced === "container") return forced;
  return (await containerRuntimeReachable()) ? "container" : "local";
}

export async function startNats(): Promise<NatsHandle> {
  return (await natsServerMode()) === "container" ? startContainerNats() : startLocalNats();
}

/**
 * Polls until the server accepts a client AND JetStream answers: a bare TCP connect succeeds
 * before JetStream has recovered its store, which would make the first test calls flaky.
 */
async function waitForJetStream(
  url: string,
  describeFailure: () => string | undefined,
): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastError = "";
  while (Date.now() < deadline) {
    const failure = describeFailure();
    if (failure !== undefined) throw new Error(failure);
    try {
      const nc = await connect({ servers: url, reconnect: false, timeout: 1_000 });
      try {
        const jsm = await jetstreamManager(nc);
        await jsm.getAccountInfo();
        return;
      } finally {
        await nc.close();
      }
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    await sleep(100);
  }
  throw new Error(
    `NATS at ${url} not ready with JetStream after ${READY_TIMEOUT_MS} ms (last error: ${lastError})`,
  );
}

export function findNatsBinary(): string {
  const fromEnv = process.env.NATS_SERVER_BIN;
  if (fromEnv) return fromEnv;
  const local = path.join(REPO_ROOT, ".tools", "bin", "nats-server");
  if (fs.existsSync(local)) return local;
  // Left to spawn's PATH lookup; a missing binary surfaces as a spawn error with this name.
  return "nats-server";
}

async function startLocalNats(): Promise<NatsHandle> {
  const bin = findNatsBinary();
  const port = await freePort();
  const url = `nats://127.0.0.1:${port}`;
  const storeDir = await fs.promises.mkdtemp(path.join(os.tmpdir(), "jsgw-nats-"));
  // Runs after trackChild's kill, so the server is no longer writing to the directory.
  const forgetStore = onHostExit(() => fs.rmSync(storeDir, { recursive: true, force: true }));
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    if (child && isRunning(child)) return;
    const stderr = new TailBuffer(4_096);
    let spawnError: Error | undefined;
    const proc = spawn(bin, ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", storeDir], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    child = proc;
    trackChild(proc);
    proc.stderr?.on("data", (chunk: Buffer) => stderr.push(chunk));
    proc.on("error", (err) => (spawnError = err));
    const failure = (): string | undefined => {
      if (spawnError) {
        return `cannot run nats-server (${bin}): ${spawnError.message}. Run scripts/ensure-tools.sh nats or set NATS_SERVER_BIN.`;
      }
      if (!isRunning(proc)) {
        return `nats-server exited early (code ${proc.exitCode}, signal ${proc.signalCode}). stderr:\n${stderr}`;
      }
      return undefined;
    };
    try {
      await waitForJetStream(url, failure);
    } catch (err) {
      await terminate(proc, 5_000);
      const msg = err instanceof Error ? err.message : String(err);
      const tail = stderr.toString();
      const withTail =
        tail === "" || msg.includes(tail) ? msg : `${msg}\nnats-server stderr:\n${tail}`;
      throw new Error(withTail, { cause: err });
    }
  };

  const stop = async (): Promise<void> => {
    if (child) await terminate(child, 5_000);
  };

  const kill = async (): Promise<void> => {
    if (!child || !isRunning(child)) return;
    child.kill("SIGKILL");
    await waitForExit(child, 5_000);
  };

  try {
    await start();
  } catch (err) {
    await fs.promises.rm(storeDir, { recursive: true, force: true });
    forgetStore();
    throw err;
  }

  return {
    url,
    port,
    start,
    stop,
    kill,
    restart: async () => {
      await stop();
      await start();
    },
    close: async () => {
      await stop();
      await fs.promises.rm(storeDir, { recursive: true, force: true });
      forgetStore();
    },
  };
}

/**
 * Container mode. testcontainers has no "start again" for a stopped container (its stop() is
 * memoised and ends the StartedTestContainer's life), so stop()/start() go through the runtime
 * client's raw container stop/start, which keeps the container and its /data store.
 *
 * The host port is bound explicitly (a free local port) rather than left to Docker: an ephemeral
 * mapping may be reassigned when the container starts again, which would break gateways that hold
 * the old NATS_URL across a restart. Limitation: with a remote Docker host the port chosen locally
 * might be taken there; url/port are still getters refreshed from `docker inspect` after each start.
 */
async function startContainerNats(): Promise<NatsHandle> {
  const { GenericContainer, Wait, getContainerRuntimeClient } = await import("testcontainers");
  const hostPort = await freePort();
  const container: StartedTestContainer = await new GenericContainer(CONTAINER_IMAGE)
    .withCommand(["-js", "-sd", "/data"])
    .withExposedPorts({ container: CONTAINER_NATS_PORT, host: hostPort })
    .withWaitStrategy(Wait.forLogMessage(/Server is ready/))
    .start();
  const client = await getContainerRuntimeClient();
  const raw = client.container.getById(container.getId());
  const host = container.getHost();
  let port = container.getMappedPort(CONTAINER_NATS_PORT);
  const url = (): string => `nats://${host}:${port}`;
  await waitForJetStream(url(), () => undefined);

  const start = async (): Promise<void> => {
    // Docker answers 304 (an error for the client) when starting a running container.
    if (!(await client.container.inspect(raw)).State.Running) await client.container.start(raw);
    const info = await client.container.inspect(raw);
    const binding = info.NetworkSettings.Ports[`${CONTAINER_NATS_PORT}/tcp`]?.[0]?.HostPort;
    if (binding) port = Number(binding);
    // The log wait strategy would match the previous run's "Server is ready", so probe instead.
    await waitForJetStream(url(), () => undefined);
  };
  const stop = async (): Promise<void> => {
    // Raw stop is a no-op (HTTP 304) when already stopped. Timeout is in milliseconds.
    await client.container.stop(raw, { timeout: 5_000 });
  };
  const kill = async (): Promise<void> => {
    if ((await client.container.inspect(raw)).State.Running) await raw.kill({ signal: "SIGKILL" });
  };

  return {
    get url() {
      return url();
    },
    get port() {
      return port;
    },
    start,
    stop,
    kill,
    restart: async () => {
      await stop();
      await start();
    },
    close: async () => {
      // Removes the container (and with it the store); tolerates it being stopped already.
      await container.stop({ remove: true, removeVolumes: true });
    },
  };
}
