import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { freePort } from "./ports";
import { isRunning, sleep, spawnTracked, terminate, waitForExit } from "./process";

export interface GatewayProcess {
  url: string;
  port: number;
  /** The admin port's base URL: /livez, /readyz, /metrics. */
  adminUrl: string;
  adminPort: number;
  child: ChildProcess;
  /** The last 64 KB of combined stdout and stderr. */
  logs(): string;
  /** Exit code (null if killed by a signal, or if still running after timeoutMs). */
  waitForExit(timeoutMs: number): Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM (graceful drain), SIGKILL after 10 s. */
  stop(): Promise<void>;
}

const REPO_ROOT = path.resolve(__dirname, "..", "..");
const MAIN = path.join(REPO_ROOT, "dist", "src", "main.js");
const READY_TIMEOUT_MS = 15_000;

/**
 * Runs the built gateway as a real process, so integration tests exercise what `npm start`
 * runs: env parsing, signal handling and shutdown included. process.execPath is the Node
 * running Jest (the pinned Node 24), not whatever `node` is first on PATH.
 */
export async function startGatewayProcess(
  env: Record<string, string>,
  opts?: {
    port?: number;
    adminPort?: number;
    /** Caps the process's open files (soft and hard: Node raises the soft limit to the hard). */
    maxOpenFiles?: number;
  },
): Promise<GatewayProcess> {
  if (!fs.existsSync(MAIN)) {
    throw new Error(`${MAIN} is missing: run \`npm run build\` before the integration tests`);
  }
  const port = opts?.port ?? (await freePort());
  const adminPort = opts?.adminPort ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  // `exec` keeps the PID Node's own, so signals reach the gateway, not the shell.
  const [command, args] =
    opts?.maxOpenFiles === undefined
      ? [process.execPath, [MAIN]]
      : [
          "/bin/sh",
          ["-c", `ulimit -n ${opts.maxOpenFiles} && exec "$0" "$@"`, process.execPath, MAIN],
        ];
  const { child, output, spawnError } = spawnTracked(command, args, {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      PORT: String(port),
      ADMIN_PORT: String(adminPort),
      LOG_LEVEL: "warn",
      ...env,
    },
  });

  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastError = "";
  for (;;) {
    const failed = spawnError();
    if (failed) throw new Error(`cannot spawn gateway: ${failed.message}`);
    if (!isRunning(child)) {
      throw new Error(
        `gateway exited before /livez answered (code ${child.exitCode}, signal ${child.signalCode}). logs:\n${output}`,
      );
    }
    if (Date.now() > deadline) {
      await terminate(child, 2_000);
      throw new Error(
        `gateway /livez not 200 after ${READY_TIMEOUT_MS} ms (last: ${lastError}). logs:\n${output}`,
      );
    }
    try {
      const res = await fetch(`${adminUrl}/livez`, { signal: AbortSignal.timeout(1_000) });
      await res.body?.cancel();
      if (res.status === 200) break;
      lastError = `HTTP ${res.status}`;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    await sleep(50);
  }

  return {
    url,
    port,
    adminUrl,
    adminPort,
    child,
    logs: () => output.toString(),
    waitForExit: async (timeoutMs) => {
      const result = await waitForExit(child, timeoutMs);
      return result === "timeout" ? null : result;
    },
    kill: (signal = "SIGKILL") => {
      child.kill(signal);
    },
    stop: () => terminate(child, 10_000),
  };
}
