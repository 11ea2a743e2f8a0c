/**
 * Reads the project's Dockerfile for the image tests, so they check and assemble what the
 * Dockerfile says rather than a copy of it. Enough of the syntax for this Dockerfile
 * (continuation lines, comments, `--flag=value` options, exec form, `${ARG}` in FROM), not a
 * general parser: what it does not understand throws, so a change the tests cannot follow
 * fails loudly instead of being misread.
 * https://docs.docker.com/reference/dockerfile/
 */

export interface Instruction {
  /** Upper-case keyword: FROM, COPY, RUN, ... */
  keyword: string;
  /** Leading `--name=value` options of FROM, COPY, ADD and RUN (`--from`, `--mount`). */
  flags: Readonly<Record<string, string>>;
  /** The rest of the instruction, continuation lines joined by a space. */
  args: string;
  /** 1-based line the instruction starts on, for messages. */
  line: number;
}

export interface Stage {
  /** The `AS` name, or the stage's index when it has none. */
  name: string;
  /** The base image, global ARG defaults substituted. */
  from: string;
  /** The instructions after FROM. */
  instructions: Instruction[];
}

export interface Dockerfile {
  /** ARGs declared before the first FROM, with their defaults (undefined: none). */
  globalArgs: Readonly<Record<string, string | undefined>>;
  stages: Stage[];
}

const FLAGGED = new Set(["FROM", "COPY", "ADD", "RUN"]);
const FLAG = /^--([a-z-]+)(?:=(\S*))?\s*/;

/** Splits a Dockerfile into stages of instructions. */
export function parseDockerfile(text: string): Dockerfile {
  const globalArgs: Record<string, string | undefined> = {};
  const stages: Stage[] = [];
  for (const instruction of logicalLines(text)) {
    const { keyword, args, line } = instruction;
    if (keyword === "FROM") {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!m?.[1]) throw new Error(`Dockerfile:${line}: cannot read FROM ${args}`);
      stages.push({
        name: m[2] ?? String(stages.length),
        from: substitute(m[1], globalArgs),
        instructions: [],
      });
    } else if (stages.length === 0) {
      if (keyword !== "ARG") throw new Error(`Dockerfile:${line}: ${keyword} before FROM`);
      Object.assign(globalArgs, argDeclaration(args));
    } else {
      stages[stages.length - 1]?.instructions.push(instruction);
    }
  }
  if (stages.length === 0) throw new Error("Dockerfile: no FROM");
  return { globalArgs, stages };
}

/** The stage `docker build` produces without --target: the last one. */
export function finalStage(dockerfile: Dockerfile): Stage {
  const last = dockerfile.stages[dockerfile.stages.length - 1];
  if (!last) throw new Error("Dockerfile: no stage");
  return last;
}

export function stageNamed(dockerfile: Dockerfile, name: string): Stage {
  const stage = dockerfile.stages.find((s) => s.name === name);
  if (!stage) throw new Error(`Dockerfile: no stage named ${name}`);
  return stage;
}

/** The stage's instructions with this keyword, in order. */
export function instructionsOf(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((i) => i.keyword === keyword);
}

/** The stage's last instruction with this keyword (the one in effect), if any. */
export function lastOf(stage: Stage, keyword: string): Instruction | undefined {
  return instructionsOf(stage, keyword).at(-1);
}

/** The WORKDIR of a stage that sets exactly one (the only layout the tests model). */
export function workdirOf(stage: Stage): string {
  const all = instructionsOf(stage, "WORKDIR");
  const only = all[0];
  if (all.length !== 1 || !only) {
    throw new Error(`Dockerfile stage ${stage.name}: expected one WORKDIR, found ${all.length}`);
  }
  if (!only.args.startsWith("/")) {
    throw new Error(`Dockerfile:${only.line}: WORKDIR ${only.args} is not absolute`);
  }
  return only.args;
}

/** `["a", "b"]` as an argv; undefined for shell form. */
export function execForm(instruction: Instruction): string[] | undefined {
  if (!instruction.args.startsWith("[")) return undefined;
  const parsed: unknown = JSON.parse(instruction.args);
  if (!Array.isArray(parsed) || !parsed.every((a): a is string => typeof a === "string")) {
    throw new Error(`Dockerfile:${instruction.line}: exec form must be a JSON array of strings`);
  }
  return parsed;
}

/** `KEY=value ...` pairs of ENV and LABEL instructions, later ones winning. */
export function keyValuesOf(stage: Stage, keyword: "ENV" | "LABEL"): Record<string, string> {
  const out: Record<string, string> = {};
  for (const instruction of instructionsOf(stage, keyword)) {
    for (const word of shellWords(instruction.args)) {
      const eq = word.indexOf("=");
      if (eq <= 0) {
        throw new Error(`Dockerfile:${instruction.line}: ${keyword} ${word} is not KEY=value`);
      }
      out[word.slice(0, eq)] = word.slice(eq + 1);
    }
  }
  return out;
}

/** ARGs declared inside a stage, with their defaults. */
export function argsOf(stage: Stage): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const instruction of instructionsOf(stage, "ARG")) {
    Object.assign(out, argDeclaration(instruction.args));
  }
  return out;
}

/**
 * Splits shell-form text into words: whitespace separates, single and double quotes group,
 * backslash escapes. Refuses shell operators (`&&`, pipes, redirections), which only a shell
 * could give a meaning; `$` is kept for the caller to substitute or refuse.
 */
export function shellWords(text: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === "\\" && quote === '"' && i + 1 < text.length) word += text[++i] as string;
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= "";
    } else if (c === "\\" && i + 1 < text.length) {
      word = (word ?? "") + (text[++i] as string);
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if ("&|;<>`".includes(c)) {
      throw new Error(`shell syntax (${c}) in: ${text}`);
    } else {
      word = (word ?? "") + c;
    }
  }
  if (quote) throw new Error(`unterminated ${quote} in: ${text}`);
  if (word !== undefined) words.push(word);
  return words;
}

/** `${NAME}` and `$NAME` replaced by `vars` (an unset or valueless ARG becomes ""). */
export function substitute(text: string, vars: Readonly<Record<string, string | undefined>>) {
  return text.replace(
    /\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (_, braced: string | undefined, bare: string | undefined) => vars[braced ?? bare ?? ""] ?? "",
  );
}

function argDeclaration(args: string): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const word of shellWords(args)) {
    const eq = word.indexOf("=");
    if (eq < 0) out[word] = undefined;
    else out[word.slice(0, eq)] = word.slice(eq + 1);
  }
  return out;
}

/** Instructions with their continuation lines joined and comment lines dropped. */
function* logicalLines(text: string): Generator<Instruction> {
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let raw = lines[i] as string;
    if (isBlankOrComment(raw)) continue;
    // A line ending in `\` continues; comment and blank lines inside a continuation are dropped.
    while (/\\\s*$/.test(raw) && i + 1 < lines.length) {
      raw = raw.replace(/\\\s*$/, " ");
      let next = lines[++i] as string;
      while (isBlankOrComment(next) && i + 1 < lines.length) next = lines[++i] as string;
      if (!isBlankOrComment(next)) raw += next.trim();
    }
    const m = /^\s*(\S+)\s*(.*)$/.exec(raw);
    if (!m?.[1]) continue;
    const keyword = m[1].toUpperCase();
    let rest = (m[2] ?? "").trim();
    const flags: Record<string, string> = {};
    if (FLAGGED.has(keyword)) {
      for (let f = FLAG.exec(rest); f; f = FLAG.exec(rest)) {
        flags[f[1] as string] = f[2] ?? "";
        rest = rest.slice(f[0].length);
      }
    }
    yield { keyword, flags, args: rest.trim(), line: start };
  }
}

function isBlankOrComment(line: string): boolean {
  return line.trim() === "" || line.trimStart().startsWith("#");
}
