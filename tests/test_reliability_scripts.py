"""Broken cue scripts: `coach export` and `coach play` give a located one-line error and an exit code.

Every file in tests/corpus/scripts/ is listed in its EXPECTED.tsv with the exit
code and the error it must give. Each is read in-process, then through both
commands as a user would run them (subprocesses, in parallel to keep the file
fast): one line on stderr, no traceback, no output file, in bounded time.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from coach.cuescript import read_script
from coach.errors import InputFileError

pytestmark = pytest.mark.slow  # a hundred coach processes over the broken-script corpus

CORPUS = Path(__file__).parent / "corpus" / "scripts"
ROUTINE_CORPUS = Path(__file__).parent / "corpus" / "routines"
HANG_S = 300.0
"""A broken script is refused in well under a second; this only catches hangs (the machine may be busy)."""


def expectations() -> list[tuple[str, int, str]]:
    rows = []
    for line in (CORPUS / "EXPECTED.tsv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, code, regex = line.split("\t")
            rows.append((name, int(code), regex))
    return rows


CASES = expectations()
IDS = [name for name, _, _ in CASES]


def test_every_script_in_the_corpus_is_listed_and_the_whole_corpus_is_large():
    listed = {name for name, _, _ in CASES}
    assert listed == {p.name for p in CORPUS.iterdir() if p.name != "EXPECTED.tsv"}
    assert len(listed) >= 40
    routines = [p for p in ROUTINE_CORPUS.iterdir() if p.name != "EXPECTED.tsv"]
    assert len(listed) + len(routines) >= 90


@pytest.mark.parametrize(("name", "code", "regex"), CASES, ids=IDS)
def test_reading_each_broken_script_raises_a_located_input_error(name, code, regex):
    path = CORPUS / name
    started = time.monotonic()
    with pytest.raises(InputFileError) as info:
        read_script(path)
    assert time.monotonic() - started < 5
    message = info.value.message
    assert message.startswith(str(path)), message
    assert re.match(regex, message[len(str(path)):]), message
    assert info.value.exit_status == code


@pytest.fixture(scope="module")
def null_device_home(tmp_path_factory) -> Path:
    """A HOME whose ALSA default device accepts and discards sound (so `play` gets past its device check)."""
    home = tmp_path_factory.mktemp("home")
    (home / ".asoundrc").write_text('pcm.!default { type null }\n')
    return home


def run_all(command: str, home: Path, folder: Path) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Run `coach COMMAND SCRIPT ...` for every corpus file, a few at a time."""
    import os

    env = {**os.environ, "HOME": str(home), "COACH_DATA_DIR": str(folder / "data"),
           "COACH_CACHE_DIR": str(folder / "cache")}
    env.pop("COACH_TRACEBACK", None)

    def one(name: str):
        out = folder / f"{name}.wav"
        # --engine estimate only spares `play` starting the speech engine while it reads the script.
        args = ["export", str(CORPUS / name), "-o", str(out)] if command == "export" else \
            ["play", str(CORPUS / name), "--quiet", "--engine", "estimate"]
        proc = subprocess.run([sys.executable, "-m", "coach", *args], capture_output=True, text=True,
                              env=env, cwd=folder, timeout=HANG_S)
        return name, (proc, out)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(one, IDS))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, null_device_home):
    folder = tmp_path_factory.mktemp("export")
    return run_all("export", null_device_home, folder), folder


@pytest.fixture(scope="module")
def played(tmp_path_factory, null_device_home):
    folder = tmp_path_factory.mktemp("play")
    return run_all("play", null_device_home, folder), folder


def check_one_line_error(proc: subprocess.CompletedProcess, path: Path, code: int, regex: str):
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    prefix = f"coach: error: {path}"
    assert lines[0].startswith(prefix), lines[0]
    assert re.match(regex, lines[0][len(prefix):]), lines[0]
    assert proc.stdout == ""


@pytest.mark.parametrize(("name", "code", "regex"), CASES, ids=IDS)
def test_export_refuses_each_broken_script_with_its_location_and_writes_nothing(exported, name, code, regex):
    results, folder = exported
    proc, out = results[name]
    check_one_line_error(proc, CORPUS / name, code, regex)
    assert not out.exists()
    assert not list(folder.glob(f".{out.name}.*")), "a temporary file was left behind"


@pytest.mark.parametrize(("name", "code", "regex"), CASES, ids=IDS)
def test_play_refuses_each_broken_script_with_its_location(played, name, code, regex):
    results, _ = played
    proc, _ = results[name]
    check_one_line_error(proc, CORPUS / name, code, regex)


def test_an_edited_script_that_is_fine_still_exports(tmp_path, run_coach):
    """The checks above refuse mistakes, not scripts: sounds under speech and touching cues are fine."""
    script = tmp_path / "ok.vtt"
    script.write_text(
        "WEBVTT\n\n1 intro\n00:00:00.000 --> 00:00:01.200\nWelcome.\n\n"
        "2 countdown\n00:00:01.000 --> 00:00:01.100\n[tick sound]\n\n"
        "3 work\n00:00:01.200 --> 00:00:02.000\nGo.\n", encoding="utf-8")
    result = run_coach("export", str(script), "-o", str(tmp_path / "ok.wav"), "--sample-rate", "8000", "-q")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ok.wav").stat().st_size > 8000
