/**
 * Shell completion scripts generated from the command table, so they list
 * exactly the commands (multi-word ones such as `task submit` included),
 * aliases and flags the parser accepts. Peer names are not baked in: the
 * scripts ask `pilot completion peers`, which prints the running daemon's
 * trusted and configured peers (nothing when no daemon answers).
 *
 * bash is the reference script; zsh runs it through `bashcompinit`; fish
 * gets its own `complete` lines.
 *
 * @module
 */
import { type ArgSpec, type CommandSpec, type FlagSpec, GLOBAL_FLAGS } from "./command.ts";

/** The shells `pilot completion` writes scripts for. */
export const SHELLS = ["bash", "zsh", "fish"] as const;

/** One of {@linkcode SHELLS}. */
export type Shell = typeof SHELLS[number];

/** What a positional argument or a flag's value completes to. */
type Kind = "peer" | "file" | "dir" | "shell" | "none";

function argKind(a: ArgSpec): Kind {
  if (a.name === "peer") return "peer";
  if (a.name === "shell") return "shell";
  return /path|file/.test(a.name) ? "file" : "none";
}

function valueKind(f: FlagSpec): Kind {
  if (f.value === "PEER") return "peer";
  if (f.value === "DIR") return "dir";
  return f.value === "PATH" || f.value === "FILE" ? "file" : "none";
}

/** A command as completion sees it: every name it answers to, its flags and positionals. */
interface Entry {
  names: string[];
  summary: string;
  flags: [string, FlagSpec][];
  args: ArgSpec[];
}

function entries(table: readonly CommandSpec[]): Entry[] {
  return table.map((c) => ({
    names: [c.name, ...(c.aliases ?? [])],
    summary: c.summary,
    flags: Object.entries(c.flags),
    args: c.args,
  }));
}

/** Every flag of every command (and the global ones) with what its value completes to. */
function valueFlags(list: readonly Entry[]): Map<string, Kind> {
  const out = new Map<string, Kind>();
  const all = [...Object.entries(GLOBAL_FLAGS), ...list.flatMap((e) => e.flags)];
  for (const [name, f] of all) {
    if (f.type === "boolean") continue;
    const kind = valueKind(f);
    // A name shared by commands keeps the most specific completion any of them gives it.
    if (!out.has(name) || out.get(name) === "none") out.set(name, kind);
  }
  return out;
}

/** Single-quotes `text` for sh. */
function shQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** The first words, and the second words each first word takes. */
function words(list: readonly Entry[]): { first: string[]; second: Map<string, string[]> } {
  const first: string[] = [];
  const second = new Map<string, string[]>();
  for (const name of list.flatMap((e) => e.names)) {
    const [w1, w2] = name.split(" ") as [string, string | undefined];
    if (!first.includes(w1)) first.push(w1);
    if (w2 !== undefined) second.set(w1, [...(second.get(w1) ?? []), w2]);
  }
  return { first, second };
}

/**
 * The bash completion script for `table`.
 *
 * @example
 * ```ts
 * import { bashScript } from "./completion.ts";
 * import { COMMANDS } from "./table.ts";
 * bashScript(COMMANDS).includes("complete -F _pilot pilot"); // true
 * ```
 */
export function bashScript(table: readonly CommandSpec[]): string {
  const list = entries(table);
  const { first, second } = words(list);
  const flags = valueFlags(list);
  const ofKind = (k: Kind) => [...flags].filter(([, v]) => v === k).map(([n]) => `--${n}`);
  const globals = Object.keys(GLOBAL_FLAGS).map((n) => `--${n}`).join(" ");
  const cases = (rows: [string, string][]) =>
    rows.map(([pattern, body]) => `    ${pattern}) ${body} ;;`).join("\n");
  const flagRows: [string, string][] = list.flatMap((e) =>
    e.names.map((n) =>
      [shQuote(n), `echo ${shQuote(e.flags.map(([f]) => `--${f}`).join(" "))}`] as [
        string,
        string,
      ]
    )
  );
  const argRows: [string, string][] = [];
  for (const e of list) {
    for (const n of e.names) {
      e.args.forEach((a, i) => {
        const kind = argKind(a);
        if (kind === "none") return;
        argRows.push([`${shQuote(`${n}:`)}${a.variadic ? "*" : i}`, `echo ${kind}`]);
      });
    }
  }
  const subRows: [string, string][] = [...second].map(([w, subs]) => [
    shQuote(w),
    `echo ${shQuote(subs.join(" "))}`,
  ]);
  return `# pilot completion for bash, generated from the command table.
# Enable it with: source <(pilot completion bash)
_pilot_commands=${shQuote(first.join(" "))}
_pilot_value_flags=${shQuote([...flags.keys()].map((n) => `--${n}`).join(" "))}
_pilot_peer_flags=${shQuote(ofKind("peer").join(" "))}
_pilot_file_flags=${shQuote(ofKind("file").join(" "))}
_pilot_dir_flags=${shQuote(ofKind("dir").join(" "))}
_pilot_global_flags=${shQuote(globals)}

_pilot_subcommands() {
  case "$1" in
${cases(subRows)}
  esac
}

_pilot_flags() {
  case "$1" in
${cases(flagRows)}
  esac
}

# What positional argument N (from 0) of a command completes to.
_pilot_arg() {
  case "$1:$2" in
${cases(argRows)}
    *) echo none ;;
  esac
}

# Peer names from the running daemon (nothing when none answers).
_pilot_peers() {
  "\${COMP_WORDS[0]}" \${_pilot_home:+--home "$_pilot_home"} completion peers 2>/dev/null
}

_pilot() {
  # zsh (bashcompinit) indexes arrays from 1 unless told otherwise.
  [[ -n "\${ZSH_VERSION-}" ]] && setopt localoptions ksharrays
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}"
  local -a typed=()
  local _pilot_home="" w i skip=0
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    if ((skip)); then
      skip=0
      [[ "\${COMP_WORDS[i-1]}" == --home ]] && _pilot_home="$w"
      continue
    fi
    if [[ " $_pilot_value_flags " == *" $w "* ]]; then skip=1; continue; fi
    [[ "$w" == -* ]] && continue
    typed+=("$w")
  done
  local cmd="" used=0 n=\${#typed[@]}
  if ((n >= 2)) && [[ " $(_pilot_subcommands "\${typed[0]}") " == *" \${typed[1]} "* ]]; then
    cmd="\${typed[0]} \${typed[1]}"
    used=2
  elif ((n >= 1)); then
    cmd="\${typed[0]}"
    used=1
  fi
  COMPREPLY=()
  if [[ " $_pilot_value_flags " == *" $prev "* ]]; then
    if [[ " $_pilot_peer_flags " == *" $prev "* ]]; then
      COMPREPLY=($(compgen -W "$(_pilot_peers)" -- "$cur"))
    elif [[ " $_pilot_file_flags " == *" $prev "* ]]; then
      COMPREPLY=($(compgen -f -- "$cur"))
    elif [[ " $_pilot_dir_flags " == *" $prev "* ]]; then
      COMPREPLY=($(compgen -d -- "$cur"))
    fi
    return 0
  fi
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(_pilot_flags "$cmd") $_pilot_global_flags" -- "$cur"))
    return 0
  fi
  if ((used == 0)); then
    COMPREPLY=($(compgen -W "$_pilot_commands" -- "$cur"))
    return 0
  fi
  local candidates=""
  ((used == 1 && n == 1)) && candidates="$(_pilot_subcommands "$cmd")"
  case "$(_pilot_arg "$cmd" $((n - used)))" in
    peer) candidates+=" $(_pilot_peers)" ;;
    shell) candidates+=" ${SHELLS.join(" ")}" ;;
    file) COMPREPLY=($(compgen -f -- "$cur")) ;;
  esac
  [[ -n "\${candidates// /}" ]] && COMPREPLY+=($(compgen -W "$candidates" -- "$cur"))
  return 0
}

complete -F _pilot pilot
`;
}

/** The zsh completion script: the bash one, through zsh's `bashcompinit`. */
export function zshScript(table: readonly CommandSpec[]): string {
  return `#compdef pilot
# pilot completion for zsh, generated from the command table.
# Enable it with: source <(pilot completion zsh)
autoload -U +X compinit && { (( $+functions[compdef] )) || compinit; }
autoload -U +X bashcompinit && bashcompinit
${bashScript(table).split("\n").filter((l) => !l.startsWith("#")).join("\n")}`;
}

/** Quotes `text` for fish (single quotes; backslash and quote escaped). */
function fishQuote(text: string): string {
  return `'${text.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}

/** The fish completion script for `table`. */
export function fishScript(table: readonly CommandSpec[]): string {
  const list = entries(table);
  const { first, second } = words(list);
  const flags = valueFlags(list);
  const lines: string[] = [
    "# pilot completion for fish, generated from the command table.",
    "# Enable it with: pilot completion fish | source",
    `set -g __pilot_value_flags ${[...flags.keys()].map((n) => fishQuote(`--${n}`)).join(" ")}`,
    `set -g __pilot_two_words ${
      [...second].flatMap(([w, subs]) => subs.map((s) => fishQuote(`${w} ${s}`))).join(" ")
    }`,
    "",
    "# The command typed so far: its one or two words, flags and their values skipped.",
    "function __pilot_cmd",
    "    set -l line (commandline -opc)",
    "    set -e line[1]",
    "    set -l typed",
    "    set -l skip 0",
    "    for w in $line",
    "        if test $skip = 1",
    "            set skip 0",
    "            continue",
    "        end",
    "        if contains -- $w $__pilot_value_flags",
    "            set skip 1",
    "            continue",
    "        end",
    "        string match -q -- '-*' $w; and continue",
    "        set -a typed $w",
    "    end",
    '    if test (count $typed) -ge 2; and contains -- "$typed[1] $typed[2]" $__pilot_two_words',
    '        echo "$typed[1] $typed[2]"',
    "    else if test (count $typed) -ge 1",
    "        echo $typed[1]",
    "    end",
    "end",
    "",
    "# Whether the command typed so far is $argv[1] ('' for none yet).",
    "function __pilot_is",
    "    set -l cmd (__pilot_cmd)",
    '    test "$cmd" = "$argv[1]"',
    "end",
    "",
    "# Peer names from the running daemon (nothing when none answers).",
    "function __pilot_peers",
    "    set -l line (commandline -opc)",
    "    set -l i (contains -i -- --home $line)",
    '    if test -n "$i"; and test (count $line) -gt $i',
    "        $line[1] --home $line[(math $i + 1)] completion peers 2>/dev/null",
    "    else",
    "        $line[1] completion peers 2>/dev/null",
    "    end",
    "end",
    "",
    "complete -c pilot -f",
  ];
  for (const [name, f] of Object.entries(GLOBAL_FLAGS)) {
    const value = f.type === "boolean"
      ? ""
      : f.value === "DIR"
      ? " -r -a '(__fish_complete_directories)'"
      : " -r";
    lines.push(`complete -c pilot -l ${name}${value} -d ${fishQuote(f.description)}`);
  }
  const none = "__pilot_is ''";
  for (const w of first) {
    const e = list.find((e) => e.names.includes(w));
    const about = e?.summary ?? `${w} commands`;
    lines.push(`complete -c pilot -n ${fishQuote(none)} -a ${fishQuote(w)} -d ${fishQuote(about)}`);
  }
  for (const [w, subs] of second) {
    for (const s of subs) {
      const e = list.find((e) => e.names.includes(`${w} ${s}`))!;
      lines.push(
        `complete -c pilot -n ${fishQuote(`__pilot_is ${fishQuote(w)}`)} -a ${fishQuote(s)} -d ${
          fishQuote(e.summary)
        }`,
      );
    }
  }
  for (const e of list) {
    for (const n of e.names) {
      const when = fishQuote(`__pilot_is ${fishQuote(n)}`);
      for (const [flag, f] of e.flags) {
        const kind = valueKind(f);
        const value = f.type === "boolean"
          ? ""
          : kind === "peer"
          ? " -r -a '(__pilot_peers)'"
          : kind === "file"
          ? " -r -F"
          : kind === "dir"
          ? " -r -a '(__fish_complete_directories)'"
          : " -r";
        lines.push(
          `complete -c pilot -n ${when} -l ${flag}${value} -d ${fishQuote(f.description)}`,
        );
      }
      const kinds = new Set(e.args.map(argKind));
      if (kinds.has("peer")) lines.push(`complete -c pilot -n ${when} -a '(__pilot_peers)'`);
      if (kinds.has("file")) lines.push(`complete -c pilot -n ${when} -F`);
      if (kinds.has("shell")) {
        lines.push(`complete -c pilot -n ${when} -a ${fishQuote(SHELLS.join(" "))}`);
      }
    }
  }
  return lines.join("\n") + "\n";
}

/** The completion script of `shell` for `table`. */
export function completionScript(shell: Shell, table: readonly CommandSpec[]): string {
  if (shell === "bash") return bashScript(table);
  return shell === "zsh" ? zshScript(table) : fishScript(table);
}
