/**
 * The container image, without a container engine. Its file tree is assembled by following the
 * Dockerfile's own stages (test/support/imageTree.ts), then run the way a container runtime
 * runs the image: the Dockerfile's ENTRYPOINT and CMD, as its numeric USER, on a read-only root
 * with a tmpfs on /tmp, with its ENV and nothing of the host's (bubblewrap,
 * test/support/imageSandbox.ts), against a real nats-server, read by a real EventSource.
 *
 * What stays unproven here: the base image itself (the sandbox runs on the host's root, with
 * the Node binary the tests run on, checked to be the version the Dockerfile pins), and
 * `docker build` itself (hadolint checks the Dockerfile in `make lint`).
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { builtinModules } from "node:module";
import path from "node:path";
import { loadConfig } from "../../src/config";
import { inContext, parseDockerignore } from "../support/imageContext";
import {
  argsOf,
  execForm,
  finalStage,
  instructionsOf,
  keyValuesOf,
  lastOf,
  parseDockerfile,
  shellWords,
  type Instruction,
} from "../support/imageDockerfile";
import {
  identityOf,
  runSandboxed,
  startSandboxed,
  writableMounts,
  type SandboxedProcess,
  type SandboxSpec,
} from "../support/imageSandbox";
import { assembleImageTree, type ImageTree } from "../support/imageTree";
import { connectJetStream, type TestJetStream } from "../support/jetstream";
import { startNats, type NatsHandle } from "../support/nats";
import { freePort } from "../support/ports";
import { isRunning, sleep } from "../support/process";
import { rawGet, SseRecorder } from "../support/sse-client";

const REPO_ROOT = path.resolve(__dirname, "..", "..");
const read = (file: string) => fs.readFileSync(path.join(REPO_ROOT, file), "utf8");

interface PackageJson {
  name: string;
  description: string;
  license: string;
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
}
interface PackageLock {
  packages: Record<string, { dev?: boolean }>;
}

const pkg = JSON.parse(read("package.json")) as PackageJson;
const lock = JSON.parse(read("package-lock.json")) as PackageLock;
const dockerfile = parseDockerfile(read("Dockerfile"));
const ignore = parseDockerignore(read(".dockerignore"));
const runtime = finalStage(dockerfile);

/** The runtime stage's USER, which must be numeric (checked below). */
function imageUser(): { uid: number; gid: number } {
  const m = /^(\d+):(\d+)$/.exec(lastOf(runtime, "USER")?.args ?? "");
  if (!m) throw new Error(`USER ${lastOf(runtime, "USER")?.args}: expected numeric uid:gid`);
  return { uid: Number(m[1]), gid: Number(m[2]) };
}

/** What a container of the image runs: ENTRYPOINT, then CMD. */
function imageCommand(): string[] {
  const exec = (i: Instruction | undefined, what: string): string[] => {
    const argv = i && execForm(i);
    if (!argv) throw new Error(`the runtime stage must set ${what} in exec form`);
    return argv;
  };
  return [
    ...exec(lastOf(runtime, "ENTRYPOINT"), "ENTRYPOINT"),
    ...exec(lastOf(runtime, "CMD"), "CMD"),
  ];
}

/** The container's environment: Docker's defaults, then the image's ENV, then the settings. */
function imageEnv(settings: Record<string, string>): Record<string, string> {
  return {
    // Docker's default PATH, behind the directory of the Node running these tests (the
    // version the Dockerfile pins, checked below), which stands in for the image's /usr/local/bin.
    PATH: `${path.dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    // What Docker sets for a user with no /etc/passwd entry.
    HOME: "/",
    ...keyValuesOf(runtime, "ENV"),
    ...settings,
  };
}

/** Every file under `dir`, relative to it, `/`-separated. */
function filesUnder(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as fs.Dirent[])
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join("/"))
    .sort();
}

describe("the Dockerfile", () => {
  it("pins every stage to the Node version the project runs and tests on", () => {
    const version = dockerfile.globalArgs.NODE_VERSION;
    expect(version).toBe(pkg.devDependencies.node);
    // The sandbox below runs the tree with this Node, standing in for the image's.
    expect(process.version).toBe(`v${version}`);
    for (const stage of dockerfile.stages) expect(stage.from).toBe(`node:${version}-bookworm-slim`);
  });

  it("runs node directly as PID 1, in exec form, the way `npm start` does", () => {
    // An empty ENTRYPOINT drops the base image's docker-entrypoint.sh: no shell in between,
    // so node itself receives SIGTERM.
    expect(execForm(lastOf(runtime, "ENTRYPOINT") as Instruction)).toEqual([]);
    expect(imageCommand()[0]).toBe("node");
    expect(imageCommand().join(" ")).toBe(pkg.scripts.start);
  });

  it("runs as a fixed numeric user and group that are not root", () => {
    expect(lastOf(runtime, "USER")?.args).toMatch(/^\d+:\d+$/);
    expect(imageUser().uid).not.toBe(0);
    expect(imageUser().gid).not.toBe(0);
  });

  it("exposes the default PORT and ADMIN_PORT, sets NODE_ENV=production and bounds V8's young generation", () => {
    const defaults = loadConfig({});
    const exposed = instructionsOf(runtime, "EXPOSE").flatMap((i) => shellWords(i.args));
    expect(exposed.map(Number).sort()).toEqual([defaults.PORT, defaults.ADMIN_PORT].sort());
    expect(keyValuesOf(runtime, "ENV").NODE_ENV).toBe("production");
    // The young generation's bound that keeps memory per connection low (README, "What a
    // connection costs"); the bench starts the gateway with the same NODE_OPTIONS.
    expect(keyValuesOf(runtime, "ENV").NODE_OPTIONS).toMatch(/--max-semi-space-size=\d+/);
  });

  it("labels the image with OCI annotations, version, revision, source and created from build arguments", () => {
    const labels = keyValuesOf(runtime, "LABEL");
    const oci = (key: string) => labels[`org.opencontainers.image.${key}`];
    expect(oci("title")).toBe(pkg.name);
    expect(oci("description")).toBe(pkg.description);
    expect(oci("licenses")).toBe(pkg.license);
    const args = argsOf(runtime);
    for (const [key, arg] of Object.entries({
      version: "VERSION",
      revision: "REVISION",
      source: "SOURCE",
      created: "CREATED",
    })) {
      expect(oci(key)).toBe(`\${${arg}}`);
      expect(Object.keys(args)).toContain(arg);
    }
  });

  it("copies into the runtime stage only package.json, the production node_modules, dist/src and the demo page", () => {
    const copies = instructionsOf(runtime, "COPY").map((i) => ({
      from: i.flags.from ?? "context",
      words: shellWords(i.args),
    }));
    expect(copies).toEqual([
      { from: "context", words: ["package.json", "./"] },
      { from: "deps", words: ["/app/node_modules", "./node_modules"] },
      { from: "build", words: ["/app/dist/src", "./dist/src"] },
      { from: "context", words: ["demo", "./demo"] },
    ]);
    const deps = dockerfile.stages.find((s) => s.name === "deps");
    const installs = instructionsOf(deps ?? runtime, "RUN").map((i) => shellWords(i.args));
    expect(installs).toEqual([
      ["npm", "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"],
    ]);
  });

  it("sends the builder only the files its COPY lines read", () => {
    const sources = dockerfile.stages.flatMap((stage) =>
      instructionsOf(stage, "COPY")
        .filter((i) => i.flags.from === undefined)
        .flatMap((i) => shellWords(i.args).slice(0, -1)),
    );
    const checkout = execFileSync(
      "git",
      ["ls-files", "--cached", "--others", "--exclude-standard"],
      {
        cwd: REPO_ROOT,
        encoding: "utf8",
      },
    )
      .split("\n")
      .filter(Boolean);
    const sent = checkout.filter((f) => inContext(ignore, f));
    const copied = (f: string) => sources.some((s) => f === s || f.startsWith(`${s}/`));

    expect(sources.filter((s) => !inContext(ignore, s))).toEqual([]);
    expect(sent.filter((f) => !copied(f))).toEqual([]);
    expect(sent).toContain("src/main.ts");
    for (const kept of [
      "node_modules/jest/package.json",
      ".tools/bin/nats-server",
      ".git/HEAD",
      "dist/src/main.js",
      "coverage/lcov.info",
      "test/image/image.test.ts",
      ".env",
    ]) {
      expect([kept, inContext(ignore, kept)]).toEqual([kept, false]);
    }
  });
});

describe("the image's file tree", () => {
  let tree: ImageTree;
  let appDir: string;

  beforeAll(async () => {
    tree = await assembleImageTree({ dockerfile, ignore, contextDir: REPO_ROOT });
    appDir = tree.appDir;
  }, 300_000);

  afterAll(async () => {
    await tree?.remove();
  });

  it("holds package.json, node_modules, dist/src and the demo page, and no sources, tests or tools", () => {
    expect(fs.readdirSync(appDir).sort()).toEqual(["demo", "dist", "node_modules", "package.json"]);
    expect(fs.readdirSync(path.join(appDir, "dist"))).toEqual(["src"]);
    const compiled = filesUnder(path.join(appDir, "dist", "src"));
    expect(compiled.filter((f) => !/\.js(\.map)?$/.test(f))).toEqual([]);
    // Every module of src/ compiled, and nothing else.
    const sources = filesUnder(path.join(REPO_ROOT, "src")).filter((f) => f.endsWith(".ts"));
    expect(compiled.filter((f) => f.endsWith(".js")).map((f) => f.replace(/\.js$/, ".ts"))).toEqual(
      sources,
    );
  });

  it("has every production dependency and no package the lockfile marks dev-only", () => {
    for (const name of Object.keys(pkg.dependencies)) {
      expect([
        name,
        fs.existsSync(path.join(appDir, "node_modules", name, "package.json")),
      ]).toEqual([name, true]);
    }
    const devOnly = Object.entries(lock.packages)
      .filter(([key, entry]) => entry.dev === true && /^node_modules\/(@[^/]+\/)?[^/]+$/.test(key))
      .map(([key]) => key);
    // The list means something: the toolchain and the test clients are in it.
    for (const name of ["jest", "typescript", "eventsource", "node", "@swc/core", "testcontainers"])
      expect(devOnly).toContain(`node_modules/${name}`);
    expect(devOnly.filter((key) => fs.existsSync(path.join(appDir, key)))).toEqual([]);
  });

  it("has compiled code that requires only Node built-ins and production dependencies", () => {
    const allowed = new Set([...builtinModules, ...Object.keys(pkg.dependencies)]);
    const required = new Set<string>();
    for (const file of filesUnder(path.join(appDir, "dist", "src")).filter((f) =>
      f.endsWith(".js"),
    )) {
      const code = fs.readFileSync(path.join(appDir, "dist", "src", file), "utf8");
      for (const m of code.matchAll(/\b(?:require|import)\(\s*["']([^"']+)["']\s*\)/g)) {
        const spec = m[1] as string;
        if (spec.startsWith(".")) continue;
        const bare = spec.replace(/^node:/, "");
        required.add(
          bare.startsWith("@")
            ? bare.split("/").slice(0, 2).join("/")
            : (bare.split("/")[0] as string),
        );
      }
    }
    expect(required.size).toBeGreaterThan(0);
    expect([...required].filter((name) => !allowed.has(name))).toEqual([]);
  });

  describe("run as the image runs it", () => {
    let uid: number;
    let gid: number;
    let nats: NatsHandle;
    let js: TestJetStream;
    const running: SandboxedProcess[] = [];
    const recorders: SseRecorder[] = [];

    const spec = (
      settings: Record<string, string>,
      more: Pick<SandboxSpec, "hide" | "writableTmp"> = {},
    ): SandboxSpec => ({ appDir, uid, gid, env: imageEnv(settings), ...more });

    /** Starts the image's command with gateway settings; resolves once /readyz answers 200. */
    async function startImageGateway(
      settings: Record<string, string> = {},
      more: Pick<SandboxSpec, "writableTmp"> = {},
    ) {
      const [port, adminPort] = [await freePort(), await freePort()];
      const proc = await startSandboxed(
        spec(
          {
            PORT: String(port),
            ADMIN_PORT: String(adminPort),
            HOST: "127.0.0.1",
            ADMIN_HOST: "127.0.0.1",
            NATS_URL: nats.url,
            LOG_LEVEL: "info",
            ...settings,
          },
          more,
        ),
        imageCommand(),
      );
      running.push(proc);
      const adminUrl = `http://127.0.0.1:${adminPort}`;
      const deadline = Date.now() + 15_000;
      let last = "";
      for (;;) {
        if (!isRunning(proc.child)) {
          throw new Error(
            `gateway exited (${proc.child.exitCode}) before ready:\n${proc.output()}`,
          );
        }
        if (Date.now() > deadline) {
          throw new Error(`gateway not ready after 15 s (${last}):\n${proc.output()}`);
        }
        try {
          const res = await rawGet(`${adminUrl}/readyz`);
          if (res.status === 200) break;
          last = `HTTP ${res.status} ${res.body}`;
        } catch (err) {
          last = err instanceof Error ? err.message : String(err);
        }
        await sleep(50);
      }
      return { proc, url: `http://127.0.0.1:${port}`, adminUrl };
    }

    const record = (url: string) => {
      const rec = new SseRecorder(url);
      recorders.push(rec);
      return rec;
    };

    beforeAll(async () => {
      ({ uid, gid } = imageUser());
      nats = await startNats();
      js = await connectJetStream(nats.url);
      await js.addStream("IMAGE", ["image.>"]);
    });

    afterEach(async () => {
      for (const rec of recorders.splice(0)) rec.close();
      await Promise.all(running.splice(0).map((p) => p.stop(5_000)));
    });

    afterAll(async () => {
      await js?.close();
      await nats?.close();
    });

    it("the sandbox refuses writes outside /tmp and runs commands as the image's user", async () => {
      // The checks below would prove nothing if the sandbox let writes through.
      const sh = (script: string) => runSandboxed(spec({}), ["sh", "-c", script]);
      expect(await sh("id -u; id -g")).toEqual({ code: 0, output: `${uid}\n${gid}\n` });
      const root = await sh("touch /image-test-probe");
      expect(root.code).not.toBe(0);
      expect(root.output).toMatch(/Read-only file system/);
      const app = await sh(`touch ${appDir}/probe`);
      expect(app.code).not.toBe(0);
      expect(app.output).toMatch(/Read-only file system/);
      expect(await sh("touch /tmp/probe && echo written")).toEqual({
        code: 0,
        output: "written\n",
      });
    });

    it("serves the demo page with DEMO=true (the page is in the image)", async () => {
      const gw = await startImageGateway({ DEMO: "true" });
      const page = await rawGet(`${gw.url}/`);
      expect(page.status).toBe(200);
      expect(page.body).toContain("EventSource");
    });

    it("checks tokens with the image's own jose (an ES module loaded from production node_modules)", async () => {
      const secret = "image-test-secret-0123456789-0123456789";
      const gw = await startImageGateway({ AUTH_JWT_SECRET: secret, DEMO: "true" });
      expect((await rawGet(`${gw.url}/events/image.orders`)).status).toBe(401);
      // The demo endpoint signs with the image's jose too; the gateway then verifies it.
      const minted = await rawGet(`${gw.url}/demo/token?subject=image.orders&ttl=60`);
      expect(minted.status).toBe(200);
      const { token } = JSON.parse(minted.body) as { token: string };
      const seq = await js.publish("image.orders", "authorized");
      const rec = record(`${gw.url}/events/image.orders?access_token=${token}&last=1`);
      await rec.waitForCount(1);
      expect(rec.events.at(-1)).toMatchObject({ id: String(seq), data: "authorized" });
    });

    it("serves events with id = stream sequence, as the image's non-root user, on a read-only root", async () => {
      const gw = await startImageGateway();

      const who = identityOf(gw.proc.pid);
      expect(who.uids).toEqual([uid, uid, uid, uid]);
      expect(who.gids).toEqual([gid, gid, gid, gid]);
      expect(who.hostUids).not.toContain(0);
      expect(who.capEff).toBe(0n);
      const writable = writableMounts(gw.proc.pid).filter(
        (m) => !["/tmp", "/dev", "/proc"].some((ok) => m === ok || m.startsWith(`${ok}/`)),
      );
      expect(writable).toEqual([]);

      const before = [
        await js.publish("image.orders", "one"),
        await js.publish("image.orders", "two"),
      ];
      const rec = record(`${gw.url}/events/image.orders?from=${before[0]}`);
      await rec.waitForCount(2);
      const after = [
        await js.publish("image.orders", "three"),
        await js.publish("image.orders", "four"),
      ];
      await rec.waitForCount(4);
      expect(rec.events.map((e) => Number(e.id))).toEqual([...before, ...after]);
      expect(rec.events.map((e) => e.data)).toEqual(["one", "two", "three", "four"]);
      expect((await rawGet(`${gw.adminUrl}/livez`)).status).toBe(200);
    });

    it("needs no writable /tmp either: with every mount read-only it starts and streams", async () => {
      const gw = await startImageGateway({}, { writableTmp: false });
      const writable = writableMounts(gw.proc.pid).filter(
        (m) => !["/dev", "/proc"].some((ok) => m === ok || m.startsWith(`${ok}/`)),
      );
      expect(writable).toEqual([]);
      const seq = await js.publish("image.orders", "read-only");
      const rec = record(`${gw.url}/events/image.orders?from=${seq}`);
      await rec.waitForCount(1);
      expect(rec.events).toEqual([{ id: String(seq), data: "read-only", type: "message" }]);
    });

    it("drains on SIGTERM and exits 0 within SHUTDOWN_TIMEOUT_MS", async () => {
      const shutdownTimeoutMs = 5_000;
      const gw = await startImageGateway({
        DRAIN_WINDOW_MS: "500",
        SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs),
      });
      // Published first and read from its sequence: the session is open and delivering,
      // however long its feed took to start.
      const seq = await js.publish("image.orders", "drained");
      const rec = record(`${gw.url}/events/image.orders?from=${seq}`);
      await rec.waitForCount(1);

      const signalled = Date.now();
      gw.proc.signal("SIGTERM");
      const code = await gw.proc.waitForExit(shutdownTimeoutMs);
      expect([code, gw.proc.output()]).toEqual([0, expect.stringContaining("shutting down")]);
      expect(Date.now() - signalled).toBeLessThan(shutdownTimeoutMs);
      // The drain ended the open stream (the client then retries a gateway that is gone).
      await rec.waitFor(() => rec.errors >= 1, 5_000);
    });

    it("fails at start-up without its node_modules instead of borrowing the host's", async () => {
      // Stands for any runtime dependency missing from the image: resolution must not find the
      // repository's node_modules (or any other) outside the tree.
      const proc = await startSandboxed(
        spec({ NATS_URL: nats.url }, { hide: [path.join(appDir, "node_modules")] }),
        imageCommand(),
      );
      running.push(proc);
      // Node's exit code for an uncaught exception: the first require that found nothing.
      expect(await proc.waitForExit(10_000)).toBe(1);
      expect(proc.output()).toMatch(/Cannot find module/);
    });
  });
});
