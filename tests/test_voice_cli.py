"""`coach voices` as a user meets it: data on stdout, errors on stderr with exit codes."""

from __future__ import annotations

import json

from coach.errors import ExitStatus


def test_voices_lists_english_voices_as_a_table(run_coach):
    result = run_coach("voices", "--engine", "pyttsx3", "--language", "en")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "LANGUAGES", "NAME"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert "gmw/en-us" in rows and "English (America)" in rows["gmw/en-us"]
    assert "gmw/de" not in rows
    assert result.stderr.startswith("coach: pyttsx3 voices")  # which engine, and which is the default


def test_voices_as_json_is_clean_machine_readable_stdout(run_coach):
    result = run_coach("voices", "--engine", "pyttsx3", "--format", "json")
    assert result.returncode == 0, result.stderr
    voices = json.loads(result.stdout)  # fails on any stray line such as "Audio saved to ..."
    assert len(voices) > 50
    assert {"id": "gmw/en-us", "name": "English (America)", "languages": ["en-us"]} in voices
    assert all(set(v) == {"id", "name", "languages"} for v in voices)


def test_a_language_with_no_voices_is_empty_not_an_error(run_coach):
    result = run_coach("voices", "--language", "xx", "--format", "json")
    assert result.returncode == 0
    assert json.loads(result.stdout) == []


def test_the_estimate_engine_has_no_voices(run_coach):
    result = run_coach("voices", "--engine", "estimate")
    assert result.returncode == 0
    assert result.stdout == ""
    assert "no estimate voices" in result.stderr


def test_an_unknown_engine_or_format_is_a_usage_error(run_coach):
    for args in (("--engine", "pyttsx"), ("--format", "yaml")):
        result = run_coach("voices", *args)
        assert result.returncode == ExitStatus.USAGE
        assert result.stdout == ""
        assert result.stderr.startswith("coach: error: ")


def test_voices_without_libespeak_ng_exits_with_the_speech_status_and_an_install_hint(run_coach, coach_env, tmp_path):
    fake = tmp_path / "lib"
    fake.mkdir()
    for name in ("libespeak-ng.so.1", "libespeak.so.1"):
        (fake / name).write_text("not a shared library\n")
    result = run_coach("voices", "--engine", "pyttsx3", env={**coach_env, "LD_LIBRARY_PATH": str(fake)})
    assert result.returncode == ExitStatus.SPEECH
    assert result.stdout == ""
    assert "libespeak-ng cannot be loaded" in result.stderr
    assert "sudo apt-get install espeak-ng" in result.stderr
