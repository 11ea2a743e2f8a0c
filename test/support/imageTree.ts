import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { inContext, type IgnorePattern } from "./imageContext";
import {
  execForm,
  shellWords,
  workdirOf,
  type Dockerfile,
  type Instruction,
  type Stage,
} from "./imageDockerfile";
import { onHostExit, TailBuffer, terminate, trackChild } from "./process";

export interface ImageTree {
  /** The final stage's WORKDIR (/app) as assembled on the host: what the image holds there. */
  appDir: string;
  /** Deletes every stage's directory. */
  remove(): Promise<void>;
}

/** A stage's WORKDIR in the image and the host directory standing in for it. */
interface StageDir {
  dir: string;
  workdir: string;
}

export interface AssembleOptions {
  dockerfile: Dockerfile;
  ignore: readonly IgnorePattern[];
  /** The build context (the repository root). */
  contextDir: string;
  /** Bound on each RUN (npm ci, tsc); default 180 s. */
  runTimeoutMs?: number;
}

/**
 * Builds the image's file tree without a container engine by following the Dockerfile stage by
 * stage. Each stage's WORKDIR becomes a directory on the host (under os.tmpdir(), readable by
 * every user, so the sandbox's unprivileged user can read it); COPY copies from the context
 * (through .dockerignore) or from an earlier stage's directory; RUN runs its command there:
 *
 * - `npm ci --omit=dev ...`: runs as written (the machine's npm, plus --prefer-offline), so the
 *   tree has exactly the production dependencies the lockfile gives;
 * - `npm ci ...` with dev dependencies (the build stage's toolchain): links the repository's
 *   node_modules, which `make deps` installed with `npm ci` from the same lockfile;
 * - `node ...`: runs with the Node running the tests (the pinned Node 24);
 * - `rm -rf` of paths outside the WORKDIR: acts on the base image, which the sandbox replaces
 *   by the host's root, so it is skipped.
 *
 * Anything else throws: a Dockerfile change this model cannot follow must fail the test rather
 * than be skipped.
 */
export async function assembleImageTree(opts: AssembleOptions): Promise<ImageTree> {
  const root = await fs.promises.mkdtemp(path.join(os.tmpdir(), "jsgw-image-"));
  const forget = onHostExit(() => fs.rmSync(root, { recursive: true, force: true }));
  const remove = async () => {
    await fs.promises.rm(root, { recursive: true, force: true });
    forget();
  };
  try {
    await fs.promises.chmod(root, 0o755);
    const stageDirs = new Map<string, StageDir>();
    let last: StageDir | undefined;
    for (const stage of opts.dockerfile.stages) {
      last = { dir: path.join(root, stage.name), workdir: workdirOf(stage) };
      await fs.promises.mkdir(last.dir, { mode: 0o755 });
      await runStage(stage, last, stageDirs, opts);
      stageDirs.set(stage.name, last);
    }
    if (!last) throw new Error("Dockerfile: no stage");
    await fs.promises.chmod(last.dir, 0o755);
    await readableByAll(last.dir);
    return { appDir: last.dir, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}

const METADATA_ONLY = new Set([
  "ARG",
  "ENV",
  "LABEL",
  "EXPOSE",
  "USER",
  "ENTRYPOINT",
  "CMD",
  "STOPSIGNAL",
  "HEALTHCHECK",
  "WORKDIR",
]);

async function runStage(
  stage: Stage,
  here: StageDir,
  earlier: ReadonlyMap<string, StageDir>,
  opts: AssembleOptions,
): Promise<void> {
  for (const instruction of stage.instructions) {
    if (instruction.keyword === "COPY") {
      await copy(instruction, here, earlier, opts);
    } else if (instruction.keyword === "RUN") {
      await run(instruction, here, opts);
    } else if (!METADATA_ONLY.has(instruction.keyword)) {
      throw unsupported(instruction, "this instruction is not modelled");
    }
  }
}

/** Docker's COPY: a directory source copies its contents into the destination. */
async function copy(
  instruction: Instruction,
  here: StageDir,
  earlier: ReadonlyMap<string, StageDir>,
  opts: AssembleOptions,
): Promise<void> {
  const unknownFlags = Object.keys(instruction.flags).filter((f) => f !== "from");
  if (unknownFlags.length > 0) throw unsupported(instruction, `flags ${unknownFlags.join(", ")}`);
  const words = execForm(instruction) ?? shellWords(instruction.args);
  const dest = words.at(-1);
  const sources = words.slice(0, -1);
  if (dest === undefined || sources.length === 0) throw unsupported(instruction, "no source");
  if (words.some((w) => /[*?[$]/.test(w))) throw unsupported(instruction, "globs or variables");
  const destPath = inside(here, dest, instruction);
  const into = dest.endsWith("/") || sources.length > 1;

  const from = instruction.flags.from;
  for (const source of sources) {
    let src: string;
    let filter: ((p: string) => boolean) | undefined;
    if (from !== undefined) {
      const stage = earlier.get(from);
      if (!stage) throw unsupported(instruction, `no earlier stage named ${from}`);
      src = inside(stage, source, instruction);
    } else {
      const rel = path.posix.normalize(source).replace(/^\/+/, "");
      if (!inContext(opts.ignore, rel)) {
        throw unsupported(instruction, `${source} is excluded by .dockerignore`);
      }
      src = path.join(opts.contextDir, rel);
      filter = (p) =>
        inContext(opts.ignore, path.relative(opts.contextDir, p).split(path.sep).join("/"));
    }
    const stat = await fs.promises.lstat(src).catch(() => undefined);
    if (!stat) throw unsupported(instruction, `${source} does not exist (${src})`);
    const target = !stat.isDirectory() && into ? path.join(destPath, path.basename(src)) : destPath;
    await fs.promises.mkdir(path.dirname(target), { recursive: true, mode: 0o755 });
    // Symlinks as they are (node_modules/.bin), not rewritten to point into the source stage.
    await fs.promises.cp(src, target, {
      recursive: true,
      verbatimSymlinks: true,
      ...(filter ? { filter } : {}),
    });
  }
}

async function run(instruction: Instruction, here: StageDir, opts: AssembleOptions): Promise<void> {
  const unknownFlags = Object.keys(instruction.flags).filter((f) => f !== "mount");
  if (unknownFlags.length > 0) throw unsupported(instruction, `flags ${unknownFlags.join(", ")}`);
  if (instruction.flags.mount !== undefined && !instruction.flags.mount.startsWith("type=cache")) {
    throw unsupported(instruction, "only cache mounts are modelled");
  }
  const argv = execForm(instruction) ?? shellWords(instruction.args);
  if (argv.some((w) => w.includes("$"))) throw unsupported(instruction, "variables");
  const [cmd, ...args] = argv;
  const timeoutMs = opts.runTimeoutMs ?? 180_000;

  if (cmd === "npm" && args[0] === "ci" && args.includes("--omit=dev")) {
    await exec("npm", [...args, "--prefer-offline"], here.dir, timeoutMs);
  } else if (cmd === "npm" && args[0] === "ci") {
    const lock = "package-lock.json";
    const [ours, repo] = await Promise.all(
      [here.dir, opts.contextDir].map((d) => fs.promises.readFile(path.join(d, lock), "utf8")),
    );
    if (ours !== repo) throw unsupported(instruction, `${lock} differs from the repository's`);
    await fs.promises.symlink(
      path.join(opts.contextDir, "node_modules"),
      path.join(here.dir, "node_modules"),
    );
  } else if (cmd === "node") {
    await exec(process.execPath, args, here.dir, timeoutMs);
  } else if (
    cmd === "rm" &&
    args
      .filter((a) => !a.startsWith("-"))
      .every((p) => p.startsWith("/") && !within(here.workdir, p))
  ) {
    // Base image files (npm, corepack, yarn): the sandbox runs on the host's root instead.
  } else {
    throw unsupported(instruction, "this command is not modelled");
  }
}

/**
 * Modes as a builder's umask 022 leaves them, whatever the test run's umask: the image's user
 * owns none of these files and must still read them.
 */
async function readableByAll(dir: string): Promise<void> {
  for (const entry of await fs.promises.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isSymbolicLink()) continue;
    const { mode } = await fs.promises.stat(p);
    const execute = entry.isDirectory() || (mode & 0o100) !== 0 ? 0o111 : 0;
    await fs.promises.chmod(p, (mode & 0o7777) | 0o444 | execute);
    if (entry.isDirectory()) await readableByAll(p);
  }
}

/** A path of the stage's filesystem (absolute, or relative to its WORKDIR) on the host. */
function inside(stage: StageDir, p: string, instruction: Instruction): string {
  const abs = path.posix.resolve(stage.workdir, p);
  if (!within(stage.workdir, abs)) {
    throw unsupported(instruction, `${p} is outside WORKDIR ${stage.workdir}`);
  }
  return path.join(stage.dir, path.posix.relative(stage.workdir, abs));
}

function within(dir: string, p: string): boolean {
  const rel = path.posix.relative(dir, path.posix.resolve(dir, p));
  return !rel.startsWith("..") && !path.posix.isAbsolute(rel);
}

function unsupported(instruction: Instruction, why: string): Error {
  return new Error(
    `Dockerfile:${instruction.line}: ${instruction.keyword} ${instruction.args}: ${why}. ` +
      "Teach test/support/imageTree.ts what it does to the image's files.",
  );
}

/**
 * Environment for npm: the test run's own, minus what `npm run` sets about the project it
 * runs in (npm_config_local_prefix would point a nested npm at the repository).
 */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!NPM_RUN_ENV.test(k)) env[k] = v;
  return env;
}

const NPM_RUN_ENV =
  /^npm_(config_(local_prefix|prefix|global_prefix|call)$|lifecycle_|package_|command$)/i;

async function exec(cmd: string, args: string[], cwd: string, timeoutMs: number): Promise<void> {
  const output = new TailBuffer(16 * 1024);
  const child = spawn(cmd, args, { cwd, env: childEnv(), stdio: ["ignore", "pipe", "pipe"] });
  trackChild(child);
  child.stdout?.on("data", (chunk: Buffer) => output.push(chunk));
  child.stderr?.on("data", (chunk: Buffer) => output.push(chunk));
  const timer = setTimeout(() => void terminate(child, 2_000), timeoutMs);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (c) => resolve(c));
    });
    if (code !== 0) {
      throw new Error(`${cmd} ${args.join(" ")} (in ${cwd}) exited with ${code}:\n${output}`);
    }
  } finally {
    clearTimeout(timer);
  }
}
