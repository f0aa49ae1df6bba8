"""Writing where it cannot: a clean one-line error, exit 4, and nothing lost.

Read-only folders (tests may run as root, whom chmod does not stop: then a
read-only bind mount in a private mount namespace), a full disk (a tiny tmpfs),
a file-size limit (`ulimit -f`: Python ignores SIGXFSZ, so writes fail with EFBIG
instead of killing the process), stdout on a full device, a missing folder and
an existing file without --force. An existing target stays byte for byte what it
was, and no temporary file is left.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from pathlib import Path

import pytest

from reliability_helpers import coach_command, coach_env, run, stray_temporaries, write_short_routine

pytestmark = pytest.mark.slow  # exports a session in every format, once per way of failing

RATE = ["--sample-rate", "8000"]
OLD_BYTES = b"RIFF a previous take the user wants to keep" * 20
FORMATS = ("wav", "flac", "ogg", "mp3")


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A folder with the short routine and a clip cache already filled (each test then runs in ~1 s)."""
    folder = tmp_path_factory.mktemp("output")
    routine = write_short_routine(folder)
    env = coach_env(folder)
    done = run(coach_command("plan", str(routine)), env, folder)
    assert done.returncode == 0, done.stderr
    return folder, routine, env


def assert_clean_failure(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 4, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("coach: error: "), line
    for word in words:
        assert word in line, line
    return line


def can_unshare_mounts() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "--", "true"], capture_output=True)
    return probe.returncode == 0


def in_mount_namespace(setup: str, command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``setup`` (shell, as root) then ``command`` in a private mount namespace; mounts vanish after."""
    script = f'set -e\n{setup}\nexec "$@"'
    return run(["unshare", "-m", "--", "sh", "-c", script, "sh", *command], env, cwd)


# -- read-only folder -----------------------------------------------------------------


def readonly_runner(folder: Path):
    """A way to run a command for which ``folder`` is read-only, or None if this machine has none."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return lambda cmd, env, cwd: run(cmd, env, cwd)
    if can_unshare_mounts():
        setup = f'mount --bind "{folder}" "{folder}"\nmount -o remount,bind,ro "{folder}"'
        return lambda cmd, env, cwd: in_mount_namespace(setup, cmd, env, cwd)
    return None


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_read_only_folder_is_a_clean_error_and_the_old_file_survives(warm, tmp_path, fmt):
    folder, routine, env = warm
    out_dir = tmp_path / "ro"
    out_dir.mkdir()
    old = out_dir / f"session.{fmt}"
    old.write_bytes(OLD_BYTES)
    runner = readonly_runner(out_dir)
    if runner is None:
        pytest.skip("no way to make a read-only folder here (root without mount namespaces)")
    proc = runner(coach_command("export", str(routine), "-o", str(old), "--force", *RATE), env, folder)
    out_dir.chmod(0o755)
    line = assert_clean_failure(proc, str(old), "cannot write")
    assert "read-only" in line or "permission denied" in line
    assert old.read_bytes() == OLD_BYTES
    assert sorted(p.name for p in out_dir.iterdir()) == [old.name]


# -- full disk ------------------------------------------------------------------------------


@pytest.mark.skipif(not can_unshare_mounts(), reason="needs root and mount namespaces for a small tmpfs")
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_full_disk_is_a_clean_error_and_the_old_file_survives(warm, tmp_path, fmt):
    folder, routine, env = warm
    disk = tmp_path / "disk"
    disk.mkdir()
    target = disk / f"session.{fmt}"
    old = tmp_path / "old"
    old.write_bytes(OLD_BYTES)
    # The tmpfs (and what is on it) only exists inside the namespace: look at it there.
    setup = f'mount -t tmpfs -o size=48k tmpfs "{disk}"\ncp "{old}" "{target}"'
    check = f'; status=$?; ls -a "{disk}" >&2; cmp -s "{old}" "{target}" && echo SAME >&2; exit $status'
    cmd = coach_command("export", str(routine), "-o", str(target), "--force", *RATE)
    script = f'set -e\n{setup}\nset +e\n"$@"{check}'
    proc = run(["unshare", "-m", "--", "sh", "-c", script, "sh", *cmd], env, folder)
    lines = proc.stderr.strip().splitlines()
    error = [line for line in lines if line.startswith("coach:")]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 4, proc.stderr
    assert error == [f"coach: error: {target}: cannot write: the disk is full"], proc.stderr
    listing = [line for line in lines if not line.startswith("coach:") and line != "SAME"]
    assert sorted(listing) == sorted([".", "..", target.name]), f"left behind: {listing}"
    assert "SAME" in lines, "the previous file was damaged"


# -- file-size limit ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_file_size_limit_is_a_clean_error_not_a_killed_process(warm, tmp_path, fmt):
    folder, routine, env = warm
    target = tmp_path / f"session.{fmt}"
    target.write_bytes(OLD_BYTES)
    limit = 32 * 1024

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = run(coach_command("export", str(routine), "-o", str(target), "--force", *RATE), env, folder,
               preexec_fn=limit_file_size)
    assert proc.returncode != -25, "killed by SIGXFSZ"
    assert_clean_failure(proc, f"{target}: cannot write: the file is larger than this system allows")
    assert target.read_bytes() == OLD_BYTES
    assert stray_temporaries(tmp_path) == []


# -- stdout, missing folders, existing files ----------------------------------------------


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
@pytest.mark.parametrize("args", [("export", "-o", "-"), ("plan", "--format", "json"), ("show",), ("--help",)])
def test_stdout_on_a_full_device_is_a_clean_error(warm, args):
    folder, routine, env = warm
    argv = [args[0], str(routine), *args[1:], *RATE] if args[0] == "export" else \
        [args[0], str(routine), *args[1:]] if args[0] in ("plan", "show") else list(args)
    with open("/dev/full", "wb") as full:
        proc = subprocess.run(coach_command(*argv), env=env, cwd=folder, stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    assert_clean_failure(proc, "stdout: cannot write: the disk is full")


def test_a_missing_folder_is_refused_before_any_speech_is_synthesized(warm, tmp_path):
    folder, routine, _ = warm
    env = coach_env(tmp_path)  # an empty cache: synthesizing first would fill it
    proc = run(coach_command("export", str(routine), "-o", str(tmp_path / "no" / "such" / "s.wav"), *RATE),
               env, tmp_path)
    assert_clean_failure(proc, "no such folder")
    assert not list((tmp_path / "cache").rglob("*.clip"))
    assert not (tmp_path / "no").exists()


def test_an_existing_file_needs_force_and_is_left_alone(warm, tmp_path):
    folder, routine, _ = warm
    env = coach_env(tmp_path)
    target = tmp_path / "s.wav"
    target.write_bytes(OLD_BYTES)
    script = tmp_path / "s.json"
    script.write_text("{}")
    for args in (["-o", str(target)], ["-o", str(tmp_path / "new.wav"), "--script", str(script)]):
        proc = run(coach_command("export", str(routine), *args, *RATE), env, tmp_path)
        assert_clean_failure(proc, "already exists", "--force")
    assert target.read_bytes() == OLD_BYTES and script.read_text() == "{}"
    assert not (tmp_path / "new.wav").exists()
    assert not list((tmp_path / "cache").rglob("*.clip")), "refused only after synthesizing the session"


def test_a_device_or_a_pipe_is_written_straight_through_and_never_replaced(warm, tmp_path):
    """`-o /dev/null` (with or without --force) or a named pipe: written to, still a device or pipe after."""
    import stat
    import threading

    folder, routine, env = warm
    for extra in ([], ["--force"]):
        proc = run(coach_command("plan", str(routine), "-o", "/dev/null", *extra), env, folder)
        assert proc.returncode == 0, proc.stderr
        assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    fifo = tmp_path / "script.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    proc = run(coach_command("plan", str(routine), "-f", "json", "-o", str(fifo)), env, folder)
    reader.join(60)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert got and got[0].lstrip().startswith(b"{")
    assert not list(tmp_path.glob(".script.fifo.*")), "no temporary file next to it"
