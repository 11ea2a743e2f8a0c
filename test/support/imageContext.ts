/**
 * Which files of the checkout `docker build .` sends as its build context, read from
 * .dockerignore the way Docker reads it (moby/patternmatcher): one Go `filepath.Match` pattern
 * per line plus `**`, a leading `!` re-includes, the last matching line wins, and a pattern that
 * matches a directory matches everything under it.
 * https://docs.docker.com/build/concepts/context/#dockerignore-files
 */

export interface IgnorePattern {
  /** The pattern as written, for messages. */
  text: string;
  /** True for a `!pattern` line, which puts matching paths back into the context. */
  reinclude: boolean;
  regex: RegExp;
}

export function parseDockerignore(text: string): IgnorePattern[] {
  const patterns: IgnorePattern[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const reinclude = line.startsWith("!");
    const body = cleanPath((reinclude ? line.slice(1) : line).trim());
    patterns.push({ text: line, reinclude, regex: patternRegex(body) });
  }
  return patterns;
}

/** Whether `relPath` (relative to the context root, `/`-separated) is sent to the builder. */
export function inContext(patterns: readonly IgnorePattern[], relPath: string): boolean {
  const target = cleanPath(relPath);
  const parents = target.split("/").map((_, i, parts) => parts.slice(0, i + 1).join("/"));
  let excluded = false;
  for (const pattern of patterns) {
    if (parents.some((p) => pattern.regex.test(p))) excluded = !pattern.reinclude;
  }
  return !excluded;
}

function cleanPath(p: string): string {
  const parts: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return parts.join("/");
}

function patternRegex(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === "*" && pattern[i + 1] === "*") {
      // `**/` matches any number of directories, including none; a final `**` matches the rest.
      i++;
      if (pattern[i + 1] === "/") {
        i++;
        re += "(?:.*/)?";
      } else {
        re += ".*";
      }
    } else if (c === "*") {
      re += "[^/]*";
    } else if (c === "?") {
      re += "[^/]";
    } else if (c === "[" || c === "\\") {
      throw new Error(`.dockerignore: character classes and escapes are not modelled: ${pattern}`);
    } else {
      re += c.replace(/[.+^${}()|\]]/g, "\\$&");
    }
  }
  return new RegExp(`^${re}$`);
}
