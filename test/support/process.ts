import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { Socket } from "node:net";
import vm from "node:vm";

// Children spawned by the test support code. One module-level set and one set of hooks (rather
// than hooks per child) so many servers in one Jest worker do not trip MaxListenersExceeded.
const live = new Set<ChildProcess>();
let hooksInstalled = false;

// Jest gives each test file a copy of `process` whose `on("exit")`/`on("SIGTERM")` listeners
// never fire (they live on the copy's own EventEmitter state). The real process object is the
// global of Node's main context, which vm.runInThisContext evaluates in. Outside Jest it is
// simply `process`.
const hostProcess = vm.runInThisContext("process") as NodeJS.Process;

const exitCleanups = new Set<() => void>();

function killAll(): void {
  for (const c of live) c.kill("SIGKILL");
  for (const cleanup of exitCleanups) {
    try {
      cleanup();
    } catch {
      // Best effort at exit: one failing cleanup must not stop the others.
    }
  }
}

/** Runs a synchronous cleanup when the (real) process exits; returns an unregister function. */
export function onHostExit(cleanup: () => void): () => void {
  installHooks();
  exitCleanups.add(cleanup);
  return () => exitCleanups.delete(cleanup);
}

/**
 * Ensures `child` dies with this Node process, whatever the tests forget to clean up.
 * - `exit` covers normal exits (Jest in-band calls process.exit; workers exit naturally).
 * - The child and its pipes are unref'd so a leaked child cannot keep a Jest worker alive;
 *   otherwise jest-worker SIGTERMs the worker after 500 ms, and a default SIGTERM skips `exit`.
 * - SIGTERM itself is handled for the same reason, exiting with the conventional 128+15.
 * A SIGKILLed parent still orphans children; nothing short of a watchdog process fixes that.
 */
export function trackChild(child: ChildProcess): void {
  live.add(child);
  child.once("exit", () => live.delete(child));
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) {
    if (stream instanceof Socket) stream.unref();
  }
  installHooks();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // `exit` handlers must be synchronous; kill() and rmSync are, which is all we need.
  hostProcess.on("exit", killAll);
  hostProcess.once("SIGTERM", () => {
    killAll();
    hostProcess.exit(143);
  });
}

/** True while the child has neither exited nor been reaped. */
export function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Resolves with the exit code (null when killed by a signal), or "timeout". */
export function waitForExit(
  child: ChildProcess,
  timeoutMs: number,
): Promise<number | null | "timeout"> {
  if (!isRunning(child)) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off("exit", onExit);
      resolve("timeout");
    }, timeoutMs);
    const onExit = (code: number | null): void => {
      clearTimeout(timer);
      resolve(code);
    };
    child.once("exit", onExit);
  });
}

/** SIGTERM, then SIGKILL if the child has not exited after `graceMs`; resolves once it is gone. */
export async function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  if (!isRunning(child)) return;
  child.kill("SIGTERM");
  if ((await waitForExit(child, graceMs)) !== "timeout") return;
  child.kill("SIGKILL");
  await waitForExit(child, 5_000);
}

/** Keeps only the last `max` characters of a stream's output, for error messages and logs(). */
export class TailBuffer {
  private text = "";
  constructor(private readonly max: number) {}
  push(chunk: Buffer | string): void {
    this.text += chunk.toString();
    if (this.text.length > this.max) this.text = this.text.slice(-this.max);
  }
  toString(): string {
    return this.text;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A tracked child whose stdout and stderr are kept in a tail buffer. */
export interface SpawnedChild {
  child: ChildProcess;
  /** The last `tail` characters of stdout and stderr together. */
  output: TailBuffer;
  /** The error `spawn` reported (e.g. ENOENT), if any. */
  spawnError(): Error | undefined;
}

/** Spawns `cmd` with piped output, tracked so that it dies with the tests (see trackChild). */
export function spawnTracked(
  cmd: string,
  args: readonly string[],
  opts: Omit<SpawnOptions, "stdio"> = {},
  tail = 64 * 1024,
): SpawnedChild {
  const output = new TailBuffer(tail);
  const child = spawn(cmd, args, { ...opts, stdio: ["ignore", "pipe", "pipe"] });
  trackChild(child);
  child.stdout?.on("data", (chunk: Buffer) => output.push(chunk));
  child.stderr?.on("data", (chunk: Buffer) => output.push(chunk));
  let error: Error | undefined;
  child.on("error", (err) => (error = err));
  return { child, output, spawnError: () => error };
}
