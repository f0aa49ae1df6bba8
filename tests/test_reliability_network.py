"""No network: Coach plans, speaks, exports and plays with networking unavailable.

Two ways, so that at least one runs everywhere: in a network namespace with no
interfaces but loopback down (`unshare -n`, where permitted, e.g. as root), and
with an audit hook in every Coach process (speech workers included, through
sitecustomize) that records any attempt to open an internet socket, resolve a
name or connect anywhere.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reliability_helpers import REPO, audio_frames, coach_command, coach_env, run, write_short_routine

pytestmark = pytest.mark.slow  # plans, exports and plays sessions with the network cut

AUDIT_HOOK = textwrap.dedent(
    """
    import os, sys

    _LOG = os.environ["COACH_NET_LOG"]
    _EVENTS = {"socket.connect", "socket.bind", "socket.getaddrinfo", "socket.gethostbyname",
               "socket.gethostbyname_ex", "socket.gethostbyaddr", "socket.sendto", "socket.sendmsg",
               "socket.__new__", "urllib.Request", "http.client.connect", "ftplib.connect", "smtplib.connect"}

    def _hook(event, args):
        if event not in _EVENTS:
            return
        if event == "socket.__new__" and args[1] not in (2, 10):  # only AF_INET, AF_INET6 open the network
            return
        if event in ("socket.connect", "socket.bind") and isinstance(args[1], (str, bytes)):
            return  # a Unix socket: local to this machine
        with open(_LOG, "a") as log:
            log.write(f"{os.getpid()} {event} {args[1:]!r}\\n")
        raise OSError(f"network use in a test that forbids it: {event}")

    sys.addaudithook(_hook)
    """
)


@pytest.fixture
def guarded(tmp_path):
    """An environment whose Python processes log (and refuse) any network use."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(AUDIT_HOOK)
    log = tmp_path / "network.log"
    env = coach_env(tmp_path, PYTHONPATH=str(site), COACH_NET_LOG=str(log))
    return env, log


def test_the_audit_hook_catches_a_connection_attempt(guarded, tmp_path):
    env, log = guarded
    probe = "import socket\ntry:\n    socket.create_connection(('192.0.2.1', 80), timeout=0.1)\nexcept OSError:\n    pass\n"
    subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, timeout=30)
    assert "socket" in log.read_text()


def test_plan_export_and_voices_open_no_socket(guarded, tmp_path):
    env, log = guarded
    routine = write_short_routine(tmp_path)  # empty cache: the speech engine really runs
    for args in (["voices"], ["plan", str(routine), "--format", "json"],
                 ["export", str(routine), "-o", str(tmp_path / "s.wav"), "--sample-rate", "8000", "-q"]):
        done = run(coach_command(*args), env, tmp_path)
        assert done.returncode == 0, done.stderr
    assert audio_frames(tmp_path / "s.wav")[0] > 0
    assert not log.exists(), log.read_text()


def network_namespace_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-n", "--", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not network_namespace_works(), reason="unshare -n is not permitted here")
def test_everything_works_inside_a_network_namespace(tmp_path):
    env = coach_env(tmp_path, HOME=str(tmp_path))
    routine = write_short_routine(tmp_path)
    offline = ["unshare", "-n", "--"]
    check = run(offline + [sys.executable, "-c", "import socket; socket.create_connection(('192.0.2.1', 80), 1)"],
                env, tmp_path)
    assert check.returncode != 0, "the namespace still has a network"
    script = tmp_path / "s.json"
    for args in (["voices"], ["plan", str(routine), "--format", "json", "-o", str(script)],
                 ["export", str(routine), "-o", str(tmp_path / "s.wav"), "--sample-rate", "8000", "-q"]):
        done = run(offline + coach_command(*args), env, tmp_path)
        assert done.returncode == 0, done.stderr
    assert audio_frames(tmp_path / "s.wav")[0] > 0
    # Two seconds of the session, played in real time into a pretend sound card (scripts/alsa-pacer).
    data = json.loads(script.read_text())
    data["cues"] = [c for c in data["cues"] if c["end_s"] <= 2.0]
    short = tmp_path / "two-seconds.json"
    short.write_text(json.dumps(data))
    fifo = tmp_path / "device.fifo"
    (tmp_path / ".asoundrc").write_text(
        f'pcm.!default {{ type file  slave.pcm "null"  file "{fifo}"  format "raw" }}\n')
    pacer = subprocess.Popen([sys.executable, str(REPO / "scripts" / "alsa-pacer"), str(fifo), str(44100 * 4),
                              str(tmp_path / "heard")], stdout=subprocess.PIPE, text=True)
    try:
        assert pacer.stdout.readline().strip() == "ready"
        done = run(offline + coach_command("play", str(short), "--quiet"), env, tmp_path)
    finally:
        pacer.terminate()
        pacer.wait(10)
    assert done.returncode == 0, done.stderr
    heard = sorted(tmp_path.glob("heard.*.raw"))
    assert heard and max(p.stat().st_size for p in heard) > 44100 * 4, "no sound reached the device"
