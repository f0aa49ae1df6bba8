"""Hostile routine files: each gives a located error and an exit code, never a traceback or a hang."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coach.errors import CoachError, InputFileError, RoutineInvalid
from coach.loader import load_file, parse_document, validate_document

CORPUS = Path(__file__).parent / "corpus" / "routines"


def expectations() -> list[tuple[str, str]]:
    rows = []
    for line in (CORPUS / "EXPECTED.tsv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, regex = line.split("\t", 1)
            rows.append((name, regex))
    return rows


def problems(path: Path) -> list[str]:
    with pytest.raises(InputFileError) as info:
        load_file(path)
    exc = info.value
    return exc.problems if isinstance(exc, RoutineInvalid) else [exc.message]


@pytest.fixture
def hang_guard():
    """Fail (rather than hang the suite) if one case takes more than 10 s."""

    def on_alarm(*_):
        raise TimeoutError("a broken input took more than 10 s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_the_corpus_has_at_least_forty_cases_and_every_file_is_listed():
    listed = {name for name, _ in expectations()}
    on_disk = {p.name for p in CORPUS.iterdir() if p.name != "EXPECTED.tsv"}
    assert listed == on_disk
    assert len(listed) >= 40


@pytest.mark.parametrize(("name", "regex"), expectations(), ids=[n for n, _ in expectations()])
def test_each_broken_routine_gives_a_located_error(name, regex, hang_guard):
    found = problems(CORPUS / name)
    prefix = str(CORPUS / name)
    assert all(p.startswith(prefix) for p in found)
    assert any(re.match(regex, p[len(prefix):]) or re.search(regex, p[len(prefix):]) for p in found), found


def test_validate_reports_the_whole_corpus_in_one_run_without_a_traceback(run_coach):
    files = sorted(str(p) for p in CORPUS.iterdir() if p.name != "EXPECTED.tsv")
    result = run_coach("validate", *files, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    for path in files:
        assert f"coach: error: {path}" in result.stderr, path
    assert f"{len(files)} of {len(files)} file(s) invalid" in result.stderr


def test_a_fifty_megabyte_file_is_refused_quickly(tmp_path, run_coach):
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.write(b"name: x\n")
        f.truncate(50 * 1024 * 1024)
    result = run_coach("show", str(path), timeout=60)
    assert result.returncode == 3
    assert result.stderr.strip() == f"coach: error: {path}: file is too large (52.4 MB); a routine file is at most 1000 kB"


def test_emoji_and_right_to_left_text_are_fine_where_text_is_spoken(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(
        "name: x\ntitle: כושר 💪\ndescription: Let's go 💪. שלום.\n"
        "exercises:\n  - {name: Squat 🏋, steps: [Stand ➡ sit.], dose: {reps: 3}}\n",
        encoding="utf-8",
    )
    assert load_file(path).title == "כושר 💪"


# --- property-based fuzzing: whatever the bytes, only a CoachError comes out ---------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(
            st.sampled_from(["name", "title", "description", "exercises", "dose", "steps", "reps", "hold_s",
                             "sets", "sides", "tempo", "seconds", "cue", "variants", "easier", "voice", "x"]),
            children, max_size=6),
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_any_parsed_document_validates_or_raises_a_coach_error(doc):
    try:
        validate_document(doc, "fuzz.yaml")
    except CoachError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=400).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_any_bytes_load_or_raise_a_coach_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "r.yaml"
    path.write_bytes(data)
    try:
        load_file(path)
    except CoachError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="name: title[]{}-&*!|>'\"#\n\t 0123456789.,:?", max_size=200))
def test_yaml_shaped_junk_parses_or_raises_a_coach_error(text):
    try:
        validate_document(parse_document(text, "junk.yaml"), "junk.yaml")
    except CoachError:
        pass
