import { fork, spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync } from "node:fs";
import { request } from "node:http";
import path from "node:path";

/** dist/ when running the compiled benchmarks. */
export const DIST = path.resolve(__dirname, "..", "..");

/**
 * Every process the bench starts, killed when the bench exits however it exits (an uncaught
 * error included), so that no server or load client outlives it.
 */
const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

/** A server under test, in its own process so its memory and CPU are its own. */
export interface ServerProc {
  child: ChildProcess;
  port: number;
  /**
   * A helper process of the server's own, measured apart: the JetStream-to-Nchan bridge of the
   * `nchan` reference. stop() stops it too.
   */
  bridge?: ServerProc;
  /** The gateway's admin port (/metrics), when the server is the gateway. */
  adminPort?: number;
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
  const child = track(
    spawn(process.execPath, [...flags, path.join(DIST, script)], {
      env: { ...process.env, ...env, PORT: String(port) },
      stdio: ["ignore", "ignore", "inherit"],
    }),
  );
  return readyProc(child, script, port, readyPort);
}

/**
 * Starts a program that is not a Node script (nginx, say) and waits for `/readyz` on
 * `readyPort`. Its stderr goes to `stderrFile` when given (whose text is quoted if it fails to
 * start), else to ours. `cleanup` runs once it has exited (or failed to start).
 */
export async function startProcess(
  command: string,
  argv: string[],
  port: number,
  opts: { readyPort?: number; stderrFile?: string; cleanup?: () => void } = {},
): Promise<ServerProc> {
  const err = opts.stderrFile ? openSync(opts.stderrFile, "a") : "inherit";
  const child = track(spawn(command, argv, { stdio: ["ignore", "ignore", err] }));
  if (typeof err === "number") closeSync(err);
  let cleaned = false;
  const clean = () => {
    if (cleaned) return;
    cleaned = true;
    opts.cleanup?.();
  };
  child.once("exit", clean);
  try {
    return await readyProc(child, path.basename(command), port, opts.readyPort ?? port);
  } catch (e) {
    const text = opts.stderrFile ? readTail(opts.stderrFile) : "";
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    else clean();
    throw new Error(`${(e as Error).message}${text ? `: ${text}` : ""}`, { cause: e });
  }
}

function readTail(file: string): string {
  try {
    return readFileSync(file, "utf8").trim().split("\n").slice(-5).join(" / ");
  } catch {
    return "";
  }
}

/** Waits for `child` to answer `/readyz` on `readyPort` (20 s at most); its stop() then. */
async function readyProc(
  child: ChildProcess,
  name: string,
  port: number,
  readyPort: number,
): Promise<ServerProc> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`);
    if (await httpOk(`http://127.0.0.1:${readyPort}/readyz`)) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`${name} did not become ready`);
    }
    await sleep(100);
  }
  return {
    child,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
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
  return track(
    fork(path.join(DIST, "bench", "lib", "loadWorker.js"), [], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    }),
  );
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
