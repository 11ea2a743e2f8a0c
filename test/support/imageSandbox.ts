import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { Socket } from "node:net";
import { isRunning, TailBuffer, trackChild, waitForExit } from "./process";

/**
 * What a container runtime does to the image's process, done by bubblewrap without an engine:
 * the host's root filesystem read-only (standing in for the image's), a fresh writable tmpfs
 * on /tmp and nothing else writable, the app's directory bound read-only at its own path as
 * the working directory, a numeric non-root user, a PID namespace in which the command is
 * PID 1 (as with `docker run` without --init), and only the environment given here.
 * The network is the host's, so tests reach the ports directly.
 * https://github.com/containers/bubblewrap
 */
export interface SandboxSpec {
  /** Host directory bound read-only at the same path, and the working directory. */
  appDir: string;
  uid: number;
  gid: number;
  /** The command's whole environment: nothing of the test run's is inherited. */
  env: Readonly<Record<string, string>>;
  /** Paths (absolute, inside appDir) hidden behind an empty read-only directory. */
  hide?: readonly string[];
  /** False: /tmp is an empty read-only tmpfs too, so nothing at all is writable. Default true. */
  writableTmp?: boolean;
}

export interface SandboxedProcess {
  /** The bwrap process; it exits with the command's exit code. */
  child: ChildProcess;
  /** The command's pid on the host (it is PID 1 in the sandbox). */
  pid: number;
  /** The last 64 KB of the command's stdout and stderr, and bwrap's. */
  output(): string;
  /** Sends a signal to the command itself, as a container runtime does. */
  signal(signal: NodeJS.Signals): void;
  /** Exit code (null when killed by a signal), or "timeout". */
  waitForExit(timeoutMs: number): Promise<number | null | "timeout">;
  /** SIGTERM to the command; SIGKILL to the sandbox (and so the command) after graceMs. */
  stop(graceMs?: number): Promise<void>;
}

/** bubblewrap's arguments for `spec`, up to (not including) the command. */
export function bwrapArgs(spec: SandboxSpec): string[] {
  const args = [
    "--unshare-user",
    "--uid",
    String(spec.uid),
    "--gid",
    String(spec.gid),
    "--unshare-pid",
    "--as-pid-1",
    "--die-with-parent",
    "--ro-bind",
    "/",
    "/",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
    "--tmpfs",
    "/tmp",
    // After the tmpfs: the app may live under the host's /tmp, which the tmpfs hides.
    "--ro-bind",
    spec.appDir,
    spec.appDir,
  ];
  if (spec.writableTmp === false) args.push("--remount-ro", "/tmp");
  for (const hidden of spec.hide ?? []) {
    if (path.relative(spec.appDir, hidden).startsWith("..")) {
      throw new Error(`sandbox: ${hidden} is not inside ${spec.appDir}`);
    }
    args.push("--tmpfs", hidden, "--remount-ro", hidden);
  }
  args.push("--chdir", spec.appDir);
  return args;
}

/** Starts `argv` in the sandbox; resolves once bwrap reports the command's pid. */
export async function startSandboxed(
  spec: SandboxSpec,
  argv: readonly string[],
): Promise<SandboxedProcess> {
  const output = new TailBuffer(64 * 1024);
  const child = spawn(bwrapBinary(), [...bwrapArgs(spec), "--info-fd", "3", ...argv], {
    env: { ...spec.env },
    stdio: ["ignore", "pipe", "pipe", "pipe"],
    ...hostIdentity(spec),
  });
  trackChild(child);
  child.stdout?.on("data", (chunk: Buffer) => output.push(chunk));
  child.stderr?.on("data", (chunk: Buffer) => output.push(chunk));
  const info = child.stdio[3];
  if (!(info instanceof Socket)) throw new Error("bwrap: no pipe for --info-fd");
  info.unref();

  const pid = await new Promise<number>((resolve, reject) => {
    let text = "";
    const fail = (why: string) => reject(new Error(`bwrap ${why}. output:\n${output}`));
    info.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      try {
        const parsed = JSON.parse(text) as { "child-pid"?: unknown };
        const childPid = parsed["child-pid"];
        if (typeof childPid === "number") resolve(childPid);
        else fail(`reported no child-pid: ${text}`);
      } catch {
        // Not the whole JSON document yet.
      }
    });
    child.once("error", (err) => fail(`cannot start: ${err.message}`));
    // "close", not "exit": a short command may end before its info is read; "close" comes
    // after every pipe (this one included) has ended, and so after its data and all output.
    child.once("close", (code, signal) =>
      fail(`ended without reporting a pid (code ${code}, signal ${signal})`),
    );
  });

  return {
    child,
    pid,
    output: () => output.toString(),
    signal: (signal) => {
      if (isRunning(child)) process.kill(pid, signal);
    },
    waitForExit: (timeoutMs) => waitForExit(child, timeoutMs),
    stop: async (graceMs = 5_000) => {
      if (!isRunning(child)) return;
      process.kill(pid, "SIGTERM");
      if ((await waitForExit(child, graceMs)) !== "timeout") return;
      child.kill("SIGKILL");
      await waitForExit(child, 5_000);
    },
  };
}

/** Runs a short command in the sandbox to its end. */
export async function runSandboxed(
  spec: SandboxSpec,
  argv: readonly string[],
  timeoutMs = 10_000,
): Promise<{ code: number | null; output: string }> {
  const sandboxed = await startSandboxed(spec, argv);
  const code = await sandboxed.waitForExit(timeoutMs);
  if (code === "timeout") {
    await sandboxed.stop(1_000);
    throw new Error(`${argv.join(" ")} still running after ${timeoutMs} ms`);
  }
  // Exit may be seen before the pipes are drained.
  await Promise.all(
    [sandboxed.child.stdout, sandboxed.child.stderr].map(
      (s) => s && !s.readableEnded && new Promise((resolve) => s.once("end", resolve)),
    ),
  );
  return { code, output: sandboxed.output() };
}

export interface ProcessIdentity {
  /** Real, effective, saved and filesystem uid as the host sees them. */
  hostUids: number[];
  hostGids: number[];
  /** The same ids as the process sees them, inside its user namespace. */
  uids: number[];
  gids: number[];
  /** Effective capabilities (in the process's own user namespace), as a bit mask. */
  capEff: bigint;
}

/** Who a process runs as, from /proc/<pid>/status and its user namespace's id maps. */
export function identityOf(pid: number): ProcessIdentity {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string): string[] => {
    const m = new RegExp(`^${name}:\\s*(.*)$`, "m").exec(status);
    if (!m?.[1]) throw new Error(`/proc/${pid}/status has no ${name} line`);
    return m[1].trim().split(/\s+/);
  };
  const hostUids = field("Uid").map(Number);
  const hostGids = field("Gid").map(Number);
  const uidMap = idMap(fs.readFileSync(`/proc/${pid}/uid_map`, "utf8"));
  const gidMap = idMap(fs.readFileSync(`/proc/${pid}/gid_map`, "utf8"));
  return {
    hostUids,
    hostGids,
    uids: hostUids.map(uidMap),
    gids: hostGids.map(gidMap),
    capEff: BigInt(`0x${field("CapEff")[0]}`),
  };
}

/**
 * The mount points a process can write to, relative to its own root: the visible mounts (not
 * covered by a later mount at the same point, nor under a covered one) that are mounted rw.
 */
export function writableMounts(pid: number): string[] {
  interface Mount {
    id: string;
    parent: string;
    point: string;
    rw: boolean;
  }
  const mounts: Mount[] = [];
  for (const line of fs.readFileSync(`/proc/${pid}/mountinfo`, "utf8").split("\n")) {
    // id parent major:minor root mount-point options ... (proc_pid_mountinfo(5))
    const [id, parent, , , point, options] = line.split(" ");
    if (!id || !parent || !point || !options) continue;
    const unescaped = point.replace(/\\([0-7]{3})/g, (_, o: string) =>
      String.fromCharCode(parseInt(o, 8)),
    );
    mounts.push({ id, parent, point: unescaped, rw: options.split(",").includes("rw") });
  }
  const byId = new Map(mounts.map((m) => [m.id, m]));
  const covered = (m: Mount): boolean =>
    mounts.some((o) => o.parent === m.id && o.point === m.point);
  // Up the parents: a mount stacked on its parent at the same point is what covers it; any
  // other parent must itself be uncovered for what is mounted under it to be seen.
  const reachable = (m: Mount, depth = 0): boolean => {
    const parent = byId.get(m.parent);
    if (!parent || depth > mounts.length) return true;
    if (parent.point !== m.point && covered(parent)) return false;
    return reachable(parent, depth + 1);
  };
  const visible = (m: Mount): boolean => !covered(m) && reachable(m);
  return mounts.filter((m) => m.rw && visible(m)).map((m) => m.point);
}

/** An id on the host, translated into the namespace a uid_map/gid_map describes (-1: unmapped). */
function idMap(text: string): (hostId: number) => number {
  const ranges = text
    .trim()
    .split("\n")
    .map((l) => l.trim().split(/\s+/).map(Number) as [number, number, number]);
  return (hostId) => {
    for (const [inside, outside, count] of ranges) {
      if (hostId >= outside && hostId < outside + count) return inside + (hostId - outside);
    }
    return -1;
  };
}

/**
 * When the tests run as root, bwrap itself runs as the image's user, so the command is
 * unprivileged on the host too and not only inside its user namespace. Otherwise it runs as
 * the test user, mapped to the image's user inside.
 */
function hostIdentity(spec: SandboxSpec): { uid?: number; gid?: number } {
  return process.getuid?.() === 0 ? { uid: spec.uid, gid: spec.gid } : {};
}

let bwrapPath: string | undefined;

function bwrapBinary(): string {
  if (bwrapPath) return bwrapPath;
  for (const dir of (process.env.PATH ?? "").split(path.delimiter).concat(["/usr/bin", "/bin"])) {
    const candidate = path.join(dir, "bwrap");
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      bwrapPath = candidate;
      return candidate;
    } catch {
      // Not in this directory.
    }
  }
  throw new Error(
    "bubblewrap (bwrap) is needed to run the image's file tree without a container engine: " +
      "apt-get install bubblewrap",
  );
}
