"""Every external program the tests and scripts call is in scripts/tools.txt, which scripts/setup installs.

A program found only on the developer's machine makes the suite fail on a fresh
one. This reads the code for program invocations (subprocess/pexpect/exec calls
and ``shutil.which`` in Python, command positions in shell scripts and in
``sh -c`` strings) and checks each against the list.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "scripts" / "tools.txt"

RUNNERS = {"run", "Popen", "call", "check_call", "check_output", "spawn", "run_process",
           "execv", "execvp", "execve", "execvpe", "execl", "execlp", "create_subprocess_exec"}
"""Functions whose first argument is a command (subprocess.*, pexpect.spawn, os.exec*, asyncio)."""

SHELLS = {"sh", "bash", "dash"}
WRAPPERS = {"unshare", "sudo", "env", "timeout", "nice", "stdbuf"}
"""Programs (and shell words) that run the command after them."""

SHELL_WORDS = {
    # keywords and builtins: not programs
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac", "in",
    "function", "select", "!", "{", "}", "[[", "]]", "[", "test", "echo", "printf", "cd", "exit", "export",
    "set", "local", "read", "return", "shift", "source", ".", "true", "false", "eval", "trap", "wait",
    "unset", "declare", "readonly", "type", "hash", "kill", "pwd", "break", "continue", "shopt", "umask",
    "ulimit", "getopts", "alias", "jobs", "fg", "bg", "mapfile", "let", ":",
}


def listed_tools() -> dict[str, str]:
    """program -> package, from scripts/tools.txt."""
    tools = {}
    for line in TOOLS.read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            assert len(words) == 2, f"scripts/tools.txt: expected 'program package', got {line!r}"
            tools[words[0]] = words[1]
    return tools


# -- shell ---------------------------------------------------------------------------


def _shell_commands(text: str) -> list[list[str]]:
    """The simple commands of a shell text, each as its words (quotes removed, expansions kept as '$')."""
    commands: list[list[str]] = [[]]
    word = ""
    has_word = False
    stack: list[str] = []  # open quotes and command substitutions: "'", '"', "$("
    i = 0

    def end_word() -> None:
        nonlocal word, has_word
        if has_word:
            commands[-1].append(word)
        word, has_word = "", False

    def end_command() -> None:
        end_word()
        commands.append([])

    while i < len(text):
        c = text[i]
        top = stack[-1] if stack else ""
        if top == "'":
            if c == "'":
                stack.pop()
            else:
                word += c
            i += 1
            continue
        if c == "\\" and i + 1 < len(text):
            if text[i + 1] != "\n":
                word, has_word = word + text[i + 1], True
            i += 2
            continue
        if text.startswith("$(", i) and not text.startswith("$((", i):
            # A command substitution is a command of its own; the word it sits in is an expansion.
            word, has_word = word + "$", True
            stack.append(word)
            stack.append("$(")
            commands.append([])
            word, has_word = "", False
            i += 2
            continue
        if top == '"':
            if c == '"':
                stack.pop()
            elif c == "$":
                word += "$"
            else:
                word += c
            i += 1
            continue
        if c == ")" and top == "$(":
            end_word()
            stack.pop()
            word = stack.pop()
            has_word = True
            commands.append([])
            i += 1
            continue
        if c in "'\"":
            stack.append(c)
            has_word = True
            i += 1
            continue
        if c == "#" and not has_word:
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        if c == "(" and word.endswith("="):  # an array assignment: its items are words, not commands
            close = text.find(")", i)
            word, i = word + "(...)", (close if close >= 0 else len(text) - 1) + 1
            continue
        if c == "&" and (word.endswith(">") or text.startswith(">", i + 1)):  # 2>&1, &>/dev/null
            word, has_word = word + c, True
        elif c in " \t":
            end_word()
        elif c in "\n;&|(){}`":
            end_command()
        elif c == "$":
            word, has_word = word + "$", True
        else:
            word, has_word = word + c, True
        i += 1
    end_word()
    return [c for c in commands if c]


def _wrapper_option(word: str) -> bool:
    """An option, a VAR=value or a duration given to a wrapper (``timeout 5``) before its command."""
    return word.startswith("-") or "=" in word or re.fullmatch(r"[0-9.]+[smhd]?", word) is not None


def shell_programs(text: str) -> set[str]:
    """Programs a shell text runs: the word at each command position that is neither builtin nor expansion."""
    found = set()
    functions = set(re.findall(r"^\s*(?:function\s+)?([A-Za-z_][\w-]*)\s*\(\)", text, re.M))
    for words in _shell_commands(text):
        k = 0
        while k < len(words):
            w = words[k]
            if re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=", w):  # an assignment before the command
                k += 1
                continue
            if w.endswith(")") or w.startswith("-"):  # a case pattern (`--neural)`, `-h|--help)`)
                k += 1 if w.endswith(")") else len(words)
                continue
            if w in ("exec", "command", "time"):  # builtins that run the command after their options
                k += 1
                while k < len(words) and words[k].startswith("-"):
                    k += 1
                continue
            if w in SHELL_WORDS:
                if w in ("if", "then", "else", "elif", "do", "while", "until", "!", "{"):
                    k += 1
                    continue
                break
            if w in functions:
                break
            if "$" in w:
                if re.fullmatch(r"\$\{\w+\[@\]\}", w):  # a "${sudo[@]}" prefix: what follows is the program
                    k += 1
                    continue
                break
            name = w.rsplit("/", 1)[-1] if w.startswith(("/usr/", "/bin/", "/sbin/")) else w
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", name):
                break  # a script of this repository (.venv/bin/python, scripts/setup), a case pattern
            found.add(name)
            if name in WRAPPERS:
                k += 1
                while k < len(words) and _wrapper_option(words[k]):
                    k += 1
                continue
            break
    return found


# -- Python --------------------------------------------------------------------------


def _const_text(node: ast.AST) -> str | None:
    """A string literal, or an f-string with its holes as '$' (so they read as expansions)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "$" for v in node.values)
    return None


def _argv_programs(items: list[ast.AST]) -> set[str]:
    """Programs of one argv list literal: the program, what a wrapper runs, and `sh -c` texts."""
    found: set[str] = set()
    words = [_const_text(item) for item in items]
    k = 0
    while k < len(words) and words[k] is not None:
        name = words[k].rsplit("/", 1)[-1] if words[k].startswith(("/usr/", "/bin/", "/sbin/")) else words[k]
        if "/" in name or not name:
            break
        found.add(name)
        if name in SHELLS and k + 2 < len(words) and words[k + 1] == "-c" and words[k + 2] is not None:
            found |= shell_programs(words[k + 2])
            break
        if name not in WRAPPERS:
            break
        k += 1
        while k < len(words) and words[k] is not None and _wrapper_option(words[k]):
            k += 1
    return found


def _call_name(node: ast.Call) -> str | None:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def _runner_functions(tree: ast.Module, runners: dict[str, int]) -> dict[str, int]:
    """Functions of this module that hand one of their parameters to a runner as the command."""
    found = {}
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        params = [a.arg for a in fn.args.args]
        for call in ast.walk(fn):
            if isinstance(call, ast.Call) and _call_name(call) in runners:
                index = runners[_call_name(call)]
                if len(call.args) > index and isinstance(call.args[index], ast.Name) \
                        and call.args[index].id in params:
                    found[fn.name] = params.index(call.args[index].id)
    return found


def python_programs(sources: dict[str, str]) -> dict[str, set[str]]:
    """file -> programs that its Python code runs or looks for."""
    trees = {name: ast.parse(text, name) for name, text in sources.items()}
    runners = {name: 0 for name in RUNNERS}
    while True:  # helpers that pass their command on (`def _wall(cmd): subprocess.run(cmd)`), to a fixpoint
        more = {}
        for tree in trees.values():
            more.update({k: v for k, v in _runner_functions(tree, runners).items() if k not in runners})
        if not more:
            break
        runners.update(more)
    found: dict[str, set[str]] = {}
    for name, tree in trees.items():
        lists = {t.id: node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                 and isinstance(node.value, (ast.List, ast.Tuple)) for t in node.targets if isinstance(t, ast.Name)}
        programs: set[str] = set()
        for call in ast.walk(tree):
            if not isinstance(call, ast.Call):
                continue
            called = _call_name(call)
            if called == "which" and call.args and _const_text(call.args[0]):
                programs.add(_const_text(call.args[0]))
            if called not in runners:
                continue
            index = runners[called]
            args = list(call.args)
            if len(args) <= index:
                continue
            command = args[index]
            if isinstance(command, ast.Name) and command.id in lists:
                command = lists[command.id]
            if isinstance(command, (ast.List, ast.Tuple)):
                programs |= _argv_programs(list(command.elts))
            elif _const_text(command) is not None:
                text = _const_text(command)
                # pexpect.spawn("/bin/sh", ["-c", "..."]) and os.execv("/usr/bin/x", [...])
                rest = args[index + 1] if len(args) > index + 1 else None
                tail = list(rest.elts) if isinstance(rest, (ast.List, ast.Tuple)) else []
                if called in ("spawn", "execv", "execvp", "execl", "execlp") or tail:
                    programs |= _argv_programs([command, *tail])
                elif any(k.arg == "shell" for k in call.keywords):
                    programs |= shell_programs(text)
                else:
                    programs |= _argv_programs([command])
        found[name] = programs
    return found


def _interpreter(text: str) -> str:
    first = text.split("\n", 1)[0]
    if not first.startswith("#!"):
        return "python"
    return "python" if "python" in first else "shell"


def repository_programs() -> dict[str, set[str]]:
    """file -> programs, over tests/, scripts/ and .ci/ (shebang lines included)."""
    python_sources, found = {}, {}
    files = sorted((ROOT / "tests").rglob("*.py")) + sorted(p for p in (ROOT / "scripts").iterdir() if p.is_file()) \
        + sorted((ROOT / ".ci").iterdir())
    for path in files:
        if path.suffix in (".txt", ".md") or path.name == "test_tools.py":
            continue
        name = str(path.relative_to(ROOT))
        text = path.read_text()
        shebang = text.split("\n", 1)[0]
        found[name] = shell_programs(shebang[2:]) if shebang.startswith("#!") else set()
        if _interpreter(text) == "python":
            python_sources[name] = text
        else:
            found[name] |= shell_programs(text)
    for name, programs in python_programs(python_sources).items():
        found[name] |= programs
    return found


def test_every_program_the_tests_and_scripts_call_is_in_the_tool_list():
    listed = listed_tools()
    missing = sorted(f"{program} (in {name})" for name, programs in repository_programs().items()
                     for program in programs if program not in listed)
    assert not missing, "add to scripts/tools.txt ('program debian-package'): " + ", ".join(missing)


def test_the_list_has_the_audio_and_media_tools_the_suite_needs():
    listed = listed_tools()
    assert listed["ffprobe"] == "ffmpeg" and listed["sox"] == "sox" and listed["aplay"] == "alsa-utils"
    assert listed["playerctl"] == "playerctl" and listed["dbus-daemon"] == "dbus"
    assert "ffprobe" in repository_programs()["tests/test_audio_writers.py"]


def test_scripts_setup_installs_the_list():
    setup = (ROOT / "scripts" / "setup").read_text()
    assert "done < scripts/tools.txt" in setup and 'missing+=("$package")' in setup


def test_the_reader_finds_programs_in_python():
    code = '''
import subprocess, shutil, os
def wall(cmd, **kw):
    return subprocess.run(cmd, **kw)
def timed(label, cmd):
    return wall(cmd)
subprocess.run(["sox", "-n", "x.wav"], check=True)
probe = ["ffprobe", "-v", "error"]
subprocess.Popen(probe)
shutil.which("aplay")
timed("x", ["lame", "-b", "128"])
subprocess.run(["unshare", "-m", "--", "sh", "-c", f"mount {x} && exec ogg123"])
pexpect.spawn("/bin/sh", ["-c", "coach play; stty -a"])
subprocess.run("flac -d a | oggenc -", shell=True)
subprocess.run([sys.executable, "-c", "pass"])
subprocess.run(["./local-script"])
'''
    assert python_programs({"x.py": code})["x.py"] == {
        "sox", "ffprobe", "aplay", "lame", "unshare", "sh", "mount", "ogg123", "stty", "coach", "flac", "oggenc"}


def test_the_reader_finds_programs_in_shell():
    text = r'''
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
for arg in "$@"; do
  case "$arg" in
    --neural) extras="test,neural" ;;
    -h|--help) sed -n '2,7p' "$0" | sort -u; exit 0 ;;
  esac
done
say() { printf 'setup: %s\n' "$*" >&2; }
if ! command -v espeak-ng >/dev/null 2>&1; then say "x | notacommand && nor this"; fi
LC_ALL=C "${sudo[@]}" apt-get install -y x   # a comment | not_a_command
exec "$here/.venv/bin/python" -m pytest "$@"
status="$(dpkg-query -W -f='${Status}' pkg || true)"
[ -f x ] || need+=(python3-dev)
timeout 5 pgrep -f x
'''
    assert shell_programs(text) == {"dirname", "sed", "sort", "espeak-ng", "apt-get", "dpkg-query", "timeout", "pgrep"}
