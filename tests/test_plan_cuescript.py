"""Cue scripts: valid subtitles, readable scripts, and edits that survive the trip back."""

from __future__ import annotations

import dataclasses
import html
import io
import json
from pathlib import Path

import pytest
import srt
import webvtt

from coach.cuescript import read_script, write_script
from coach.errors import InputFileError, UsageError
from coach.loader import load_routine
from coach.planner import PlanSettings, estimate_speech_s, plan
from coach.timeline import Cue, Timeline, VoiceSpec


@pytest.fixture(scope="module")
def timeline() -> Timeline:
    spec = VoiceSpec(engine="estimate", voice="en-us", rate_wpm=165)
    return plan(load_routine("lower-back"), PlanSettings(voice=spec), lambda t: estimate_speech_s(t, 165))


def label(c: Cue) -> str:
    return f"[{c.sound} sound]" if c.kind == "sound" else c.text


def test_vtt_is_valid_webvtt_with_every_cue(timeline):
    captions = webvtt.from_string(write_script(timeline, "vtt")).captions
    assert len(captions) == len(timeline.cues)
    for caption, cue in zip(captions, timeline.cues):
        assert caption.start_in_seconds + caption.start_time.milliseconds / 1000 == pytest.approx(cue.start_s, abs=1e-6)
        assert caption.text == label(cue)
    assert captions[0].identifier == "1 intro"


def test_srt_is_valid_subrip_with_every_cue(timeline):
    subtitles = list(srt.parse(write_script(timeline, "srt"), ignore_errors=False))
    assert [s.index for s in subtitles] == list(range(1, len(timeline.cues) + 1))
    for sub, cue in zip(subtitles, timeline.cues):
        assert sub.start.total_seconds() == pytest.approx(cue.start_s, abs=1e-6)
        assert sub.end.total_seconds() == pytest.approx(cue.end_s, abs=1e-6)
        assert sub.content == label(cue)


def test_vtt_escapes_markup_and_reads_it_back(tmp_path):
    cues = (Cue(0.0, 1.5, "speech", "instruction", text="Knees < hips & back > flat --> good"),)
    t = Timeline("x", "A --> B", "standard", VoiceSpec(), 1.5, (), cues)
    text = write_script(t, "vtt")
    raw = webvtt.from_string(text).captions[0].text
    assert "-->" not in raw and html.unescape(raw) == "Knees < hips & back > flat --> good"
    (tmp_path / "x.vtt").write_text(text, encoding="utf-8")
    assert read_script(tmp_path / "x.vtt").cues == cues


@pytest.mark.parametrize("fmt", ["json", "vtt"])
def test_an_unedited_script_reads_back_as_the_same_timeline(timeline, tmp_path, fmt):
    path = tmp_path / f"plan.{fmt}"
    path.write_text(write_script(timeline, fmt), encoding="utf-8")
    back = read_script(path)
    expected = timeline if fmt == "json" else dataclasses.replace(timeline, dropped=())
    assert back == expected


def test_an_unedited_srt_keeps_every_time_text_and_sound(timeline, tmp_path):
    path = tmp_path / "plan.srt"
    path.write_text(write_script(timeline, "srt"), encoding="utf-8")
    back = read_script(path)
    assert [(c.start_s, c.end_s, c.kind, c.text, c.sound) for c in back.cues] == [
        (c.start_s, c.end_s, c.kind, c.text, c.sound) for c in timeline.cues]
    assert back.duration_s == timeline.duration_s


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


@pytest.mark.parametrize("fmt", ["json", "vtt", "srt"])
def test_an_edited_text_and_a_moved_cue_are_exactly_what_reads_back(timeline, tmp_path, fmt):
    old_text = "Start with your right arm and left leg, then alternate."
    i = next(i for i, c in enumerate(timeline.cues) if c.text == old_text)
    cue = timeline.cues[i]
    j = next(j for j, c in enumerate(timeline.cues) if c.text == "Halfway.")
    moved = timeline.cues[j]
    script = write_script(timeline, fmt)
    script = edit(script, old_text, "Find your spot on the mat.")
    if fmt == "json":
        old = json.dumps(moved.to_dict(), ensure_ascii=False)
        new = json.dumps({**moved.to_dict(), "start_s": moved.start_s + 1, "end_s": moved.end_s + 1})
    else:
        sep = "." if fmt == "vtt" else ","

        def clock(s: float) -> str:
            total = round(s * 1000)
            return f"{total // 3600000:02d}:{total // 60000 % 60:02d}:{total // 1000 % 60:02d}{sep}{total % 1000:03d}"

        old = f"{clock(moved.start_s)} --> {clock(moved.end_s)}\nHalfway."
        new = f"{clock(moved.start_s + 1)} --> {clock(moved.end_s + 1)}\nHalfway."
    script = edit(script, old, new)
    path = tmp_path / f"edited.{fmt}"
    path.write_text(script, encoding="utf-8")
    back = read_script(path)
    expected = list(timeline.cues)
    expected[i] = dataclasses.replace(cue, text="Find your spot on the mat.")
    expected[j] = dataclasses.replace(moved, start_s=round(moved.start_s + 1, 3), end_s=round(moved.end_s + 1, 3))
    expected.sort(key=lambda c: (c.start_s, c.end_s))
    if fmt == "srt":  # SubRip has no room for phases and exercises: compare what is heard
        heard = lambda cues: [(c.start_s, c.end_s, c.kind, c.text, c.sound) for c in cues]  # noqa: E731
        assert heard(back.cues) == heard(expected)
    else:
        assert list(back.cues) == expected


def test_txt_is_a_readable_timed_script_with_chapters(timeline):
    txt = write_script(timeline, "txt")
    assert txt.splitlines()[0].startswith("Training Your Lower Back (standard level, 21:")
    assert "== 0:00.0  Introduction ==" in txt and "Bird-Dog ==" in txt
    for cue in timeline.speech:
        assert " ".join(cue.text.split()) in txt
    assert "   0:00.0  Welcome to Training Your Lower Back." in txt


def test_labels_are_an_audacity_label_track(timeline):
    rows = [line.split("\t") for line in write_script(timeline, "labels").splitlines()]
    assert len(rows) == len(timeline.cues) + len(timeline.chapters)
    assert all(len(r) == 3 and float(r[0]) <= float(r[1]) for r in rows)
    assert [float(r[0]) for r in rows] == sorted(float(r[0]) for r in rows)
    assert ["0.000000", "0.000000", "Chapter: Introduction"] in rows


def test_the_table_lists_each_exercise_its_sets_start_length_and_the_total(timeline):
    table = write_script(timeline, "table")
    for name, sets in (("Side-Lying T-Spine Rotation", 1), ("Bird-Dog", 2), ("Dumbbell Good Morning", 2),
                       ("Child's Pose", 2)):
        line = next(line for line in table.splitlines() if name in line)
        assert line.split()[-3] == str(sets)
    minutes, seconds = divmod(round(timeline.duration_s), 60)
    assert "Total" in table and f"{minutes}:{seconds:02d}" in table


def test_an_unknown_format_is_a_usage_error(timeline):
    with pytest.raises(UsageError):
        write_script(timeline, "xml")


def bad(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputFileError) as err:
        read_script(path)
    return str(err.value)


def test_json_syntax_errors_name_the_line_and_column(tmp_path):
    assert bad(tmp_path, "a.json", '{\n  "cues": [\n    {"start_s": 0,}\n  ]\n}').startswith(
        f"{tmp_path / 'a.json'}:3:19: invalid JSON")


def test_a_bad_json_cue_is_reported_at_its_line(timeline, tmp_path):
    script = write_script(timeline, "json").splitlines()
    line = next(n for n, text in enumerate(script, 1) if '"Get into position: on your hands and knees' in text)
    script[line - 1] = script[line - 1].replace('"start_s": ', '"start_s": "soon", "was": ')
    message = bad(tmp_path, "b.json", "\n".join(script))
    assert message.startswith(f"{tmp_path / 'b.json'}:{line}: cues[")
    assert "start_s: expected a number of seconds" in message


@pytest.mark.parametrize("name, text, line, words", [
    ("a.vtt", "WEBVTT\n\n1 intro\n00:00:01.000 --> 00:00:0x.500\nHello.\n", 4, "bad time '00:00:0x.500'"),
    ("b.vtt", "Hello\n", 1, "must start with 'WEBVTT'"),
    ("c.vtt", "WEBVTT\n\n00:00:02.000 --> 00:00:01.000\nHello.\n", 3, "ends (1.000 s) before it starts"),
    ("d.vtt", "WEBVTT\n\nNOTE coach {broken\n", 3, "not valid JSON"),
    ("e.vtt", "WEBVTT\n\n1 intro\nno timing here\nHello.\n", 4, "expected a timing line"),
    ("a.srt", "1\n00:00:01,000 --> 00:00:02,000\nHi.\n\nsecond\n00:00:03,000 --> 00:00:04,000\nThere.\n", 5,
     "expected a cue number"),
    ("b.srt", "1\n00:00:01,000 --> 00:00:02,000\n", 2, "the cue has no text"),
    ("c.srt", "1\n00:00:01,000 --> 00:00:02,000\n[drum sound]x\n\n2\n01:00 --> 00:00:04,000\nx\n", 6, "bad time"),
])
def test_subtitle_errors_name_the_file_and_line(tmp_path, name, text, line, words):
    message = bad(tmp_path, name, text)
    assert message.startswith(f"{tmp_path / name}:{line}:"), message
    assert words in message


def test_unreadable_scripts_are_input_errors(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        read_script(tmp_path / "missing.json")
    assert "is empty" in bad(tmp_path, "empty.vtt", "")
    assert "not a cue script" in bad(tmp_path, "notes.md", "# hello\n")
    assert "no cues" in bad(tmp_path, "none.vtt", "WEBVTT\n\n")


def test_a_script_without_a_known_suffix_is_recognised_by_its_content(timeline, tmp_path):
    path = tmp_path / "plan.txt"
    path.write_text(write_script(timeline, "vtt"), encoding="utf-8")
    assert read_script(path).cues == timeline.cues
    stream = io.StringIO(write_script(timeline, "json"))
    assert json.load(stream)["routine"] == "lower-back"
