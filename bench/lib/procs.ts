import { fork, spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { request } from "node:http";
import path from "node:path";

/** dist/ when running the compiled benchmarks. */
export const DIST = path.resolve(__dirname, "..", "..");

/** A server under test, in its own process so its memory and CPU are its own. */
export interface ServerProc {
  child: ChildProcess;
  port: number;
  stop(): Promise<void>;
}

/**
 * Starts `script` on `port` and waits for `/readyz` on `readyPort` (the gateway's admin port;
 * the reference servers answer it on their only port).
 */
export async function startServer(
  script: string,
  env: Record<string, string>,
  port: number,
  readyPort = port,
): Promise<ServerProc> {
  // BENCH_PROFILE_DIR=<dir> profiles the server under test (node --cpu-prof) for `make bench`.
  const prof = process.env.BENCH_PROFILE_DIR;
  const flags = prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`] : [];
  const child = spawn(process.execPath, [...flags, path.join(DIST, script)], {
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${script} exited with ${child.exitCode}`);
    if (await httpOk(`http://127.0.0.1:${readyPort}/readyz`)) break;
    if (Date.now() > deadline) throw new Error(`${script} did not become ready`);
    await sleep(100);
  }
  return {
    child,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
        child.once("exit", () => {
          clearTimeout(t);
          resolve();
        });
        child.kill("SIGTERM");
      }),
  };
}

export function httpOk(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(url, { timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

/** Resident set size of a process, in bytes (Linux /proc). */
export function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : NaN;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function forkWorker(): ChildProcess {
  return fork(path.join(DIST, "bench", "lib", "loadWorker.js"), [], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
}

/** CPU time (user + system) a process has used so far, in milliseconds (Linux /proc, 10 ms ticks). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/**
 * The pid of a local process whose command line has `needle` as its program's base name and
 * `arg` among its arguments (Linux /proc), or undefined: nats-server's, say, which the test
 * support's NatsHandle does not expose. Not found for a nats-server in a container.
 */
export function findPid(needle: string, arg: string): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // gone since readdir, or not ours to read
    }
    if (path.basename(argv[0] ?? "") === needle && argv.slice(1).includes(arg))
      return Number(entry);
  }
  return undefined;
}
