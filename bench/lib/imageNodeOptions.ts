import { readFileSync } from "node:fs";
import path from "node:path";
import { finalStage, keyValuesOf, parseDockerfile } from "../../test/support/imageDockerfile";

/**
 * The NODE_OPTIONS the container image runs the gateway with (its Dockerfile's ENV), so the
 * benchmarks measure the gateway as it ships (the young generation's bound shows in memory per
 * connection). Read from the Dockerfile itself: one place says what the image runs.
 */
export function imageNodeOptions(): string {
  // From dist/bench/lib, or bench/lib when run through ts-node: the repository root has package.json.
  let dir = __dirname;
  while (!safeRead(path.join(dir, "package.json"))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error("imageNodeOptions: no repository root above " + __dirname);
    dir = up;
  }
  const text = safeRead(path.join(dir, "Dockerfile"));
  if (!text) throw new Error(`imageNodeOptions: no Dockerfile in ${dir}`);
  return keyValuesOf(finalStage(parseDockerfile(text)), "ENV").NODE_OPTIONS ?? "";
}

function safeRead(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}
