"""Every path shotfit writes passes one guard: never among the plates, keyframes or truth, never over a
file shotfit did not make, always with its kind's extension; a finished model is never replaced unasked.

The property across commands: every output option of train, render, export, eval and suggest, pointed at a plate
(or a new name inside a folder of inputs), is refused in one line, and every input's bytes stay as they were.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import shots
from shots import FRAMES, assert_unchanged, fails, snapshot, succeeds, train_args

from shotfit.errors import ShotfitError
from shotfit.files import REVIEW_COMMENT, guard_output


@pytest.fixture(autouse=True)
def _process_state():
    yield from shots.isolated_process_state()


@pytest.fixture
def shot(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """src/, keys/, truth/, pred/ (frames to score) and a trained run/ in the test's folder (the current
    directory), the run recording these src/ and keys/ as what it was trained on (as a run trained here would)."""
    shots.copy_trained(tmp_path_factory, tmp_path)
    shutil.copytree("truth", "pred")  # frames as a render would have left them, for eval --pred
    Path("sweep.yaml").write_text("name: tiny\nsource: src\nkeyframes: keys\ntruth: truth\n"
                                  "set: [model.width=4, model.depth=2]\nspace: {loss.l1: [1]}\n")
    info = json.loads(Path("run/run.json").read_text())
    Path("run/run.json").write_text(json.dumps({**info, "source": "src", "keyframes": "keys"}))
    return tmp_path


PLATE = f"plate.{FRAMES[0]:04d}.png"


# --- the guard itself ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["src/plate.0001.png", "src/new.json", "src", "src/deeper/new.json", "./src/../src/x.json"])
def test_guard_refuses_any_path_among_the_plates(tmp_path: Path, path: str):
    shots.write_shot(tmp_path / "src", [1])
    with pytest.raises(ShotfitError, match="inside the source folder 'src/'") as caught:
        guard_output(path, "json", protected=[("source", "src")], parameter="json_path")
    assert caught.value.parameter == "json_path"


def test_guard_protects_the_folder_of_a_frame_pattern(tmp_path: Path):
    shots.write_shot(tmp_path / "src", [1])
    with pytest.raises(ShotfitError, match="inside the source folder"):
        guard_output("src/model.onnx", "onnx", protected=[("source", "src/plate.####.png")])


def test_guard_protects_a_video_file_but_not_its_neighbours(tmp_path: Path):
    (tmp_path / "clip.mp4").write_bytes(b"a movie")
    with pytest.raises(ShotfitError, match="is the source 'clip.mp4' itself"):
        guard_output("clip.mp4", "review", protected=[("source", "clip.mp4")], parameter="review")
    assert guard_output("review.mp4", "review", protected=[("source", "clip.mp4")]) == Path("review.mp4")


def test_guard_ignores_an_input_that_is_not_here(tmp_path: Path):
    # a run trained elsewhere records a relative source that does not exist from here: nothing to protect
    assert guard_output("model.onnx", "onnx", protected=[("source", "elsewhere/src")]) == Path("model.onnx")


@pytest.mark.parametrize(("kind", "path", "wanted"), [
    ("onnx", "model.png", ".onnx"), ("torchscript", "model.onnx", ".pt"), ("json", "report.txt", ".json"),
    ("review", "review.mov", ".mp4"), ("json", "report", ".json")])
def test_guard_requires_the_kind_extension(tmp_path: Path, kind: str, path: str, wanted: str):
    with pytest.raises(ShotfitError, match=f"must end in {wanted}"):
        guard_output(path, kind)
    assert not Path(path).exists()


def test_guard_refuses_a_file_it_did_not_make(tmp_path: Path):
    Path("notes.json").write_text('{"shot": "sh010", "notes": "the artist\'s"}')
    with pytest.raises(ShotfitError, match="'notes.json' already exists and was not made by shotfit"):
        guard_output("notes.json", "json", parameter="json_path")
    assert json.loads(Path("notes.json").read_text())["notes"] == "the artist's"


@pytest.mark.parametrize(("kind", "name", "content"), [
    ("json", "report.json", json.dumps({"compared": 1, "flow_from": "truth", "summary": {}, "frames": []})),
    ("review", "review.mp4", f"....moov....{REVIEW_COMMENT}...."),
    ("onnx", "model.onnx", "....shotfit.version....")])
def test_guard_replaces_a_file_that_carries_shotfits_mark(tmp_path: Path, kind: str, name: str, content: str):
    Path(name).write_text(content)
    assert guard_output(name, kind) == Path(name)


def test_guard_replaces_files_inside_a_shotfit_run_folder(shot: Path):
    Path("run/model.onnx").write_bytes(b"an older export")
    assert guard_output("run/model.onnx", "onnx") == Path("run/model.onnx")
    Path("elsewhere").mkdir()
    Path("elsewhere/model.onnx").write_bytes(b"someone's model")
    with pytest.raises(ShotfitError, match="not made by shotfit"):
        guard_output("elsewhere/model.onnx", "onnx")


def test_guard_refuses_a_folder_where_a_file_goes_and_the_reverse(tmp_path: Path):
    Path("report.json").mkdir()
    with pytest.raises(ShotfitError, match="is a folder, not a file"):
        guard_output("report.json", "json")
    Path("logs").write_text("a file")
    with pytest.raises(ShotfitError, match="is a file, not a folder"):
        guard_output("logs", "tensorboard")


# --- the cases of issue 15 ----------------------------------------------------------------------

@pytest.mark.parametrize("out", [f"src/{PLATE}", "src/model.onnx", "keys/model.onnx"])
def test_export_among_the_plates_is_refused(shot: Path, out: str):
    before = snapshot(shot)
    line = fails("export", "--run", "run", "--format", "onnx", "--out", out)
    assert f"ONNX model '{out}' is inside the" in line and line.endswith("(--out)"), line
    assert_unchanged(before, shot)


def test_export_over_the_trained_model_is_refused(shot: Path):
    before = snapshot(shot)
    line = fails("export", "--run", "run", "--format", "torchscript", "--out", "run/model.pt")
    assert "is the trained model 'run/model.pt' itself" in line, line
    assert_unchanged(before, shot)


def test_export_again_replaces_its_own_file(shot: Path):
    succeeds("export", "--run", "run", "--format", "onnx", "--out", "model.onnx")
    succeeds("export", "--run", "run", "--format", "onnx", "--out", "model.onnx")
    succeeds("export", "--run", "run", "--format", "torchscript")
    succeeds("export", "--run", "run", "--format", "torchscript")


def test_export_over_a_foreign_file_is_refused(shot: Path):
    Path("model.onnx").write_bytes(b"a model from another tool")
    line = fails("export", "--run", "run", "--format", "onnx", "--out", "model.onnx")
    assert "'model.onnx' already exists and was not made by shotfit" in line, line
    assert Path("model.onnx").read_bytes() == b"a model from another tool"


def test_eval_json_over_a_plate_is_refused(shot: Path):
    succeeds("render", "--run", "run", "--source", "src", "--out", "render", "--device", "cpu")
    before = snapshot(shot)
    line = fails("eval", "--pred", "render", "--truth", "truth", "--source", "src", "--json", f"src/{PLATE}")
    assert "inside the source folder 'src/'" in line and line.endswith("(--json)"), line
    assert_unchanged(before, shot)


def test_resume_without_checkpoints_keeps_the_finished_model(shot: Path):
    shutil.rmtree("run/checkpoints")
    before = snapshot(shot)
    line = fails(*train_args("src", "keys", "run", "--resume"))
    assert line == ("shotfit: run folder 'run' holds a finished model but no checkpoint to resume from: remove "
                    "'run/model.pt' to train it again from the start, or train into another folder (--resume)")
    assert_unchanged(before, shot)


def test_tensorboard_among_the_plates_is_refused(shot: Path):
    before = snapshot(shot)
    args = [a for a in train_args("src", "keys", "new_run") if a != "--no-track"]
    line = fails(*args, "--tensorboard", "src")
    assert "TensorBoard folder 'src' is inside the source folder 'src/'" in line and line.endswith("(--tensorboard)")
    assert_unchanged(before, shot)
    assert not Path("new_run").exists()


# --- the property across commands ---------------------------------------------------------------

def _outputs(target: str) -> dict[str, list[str]]:
    """Every output option of every command, pointed at ``target``."""
    return {
        "train --out": train_args("src", "keys", target),
        "train --tensorboard": [*train_args("src", "keys", "new_run"), "--tensorboard", target],
        "render --out": ["render", "--run", "run", "--source", "src", "--out", target, "--device", "cpu"],
        "render --review": ["render", "--run", "run", "--source", "src", "--out", "render", "--device", "cpu",
                            "--review", target],
        "export onnx --out": ["export", "--run", "run", "--format", "onnx", "--out", target],
        "export torchscript --out": ["export", "--run", "run", "--format", "torchscript", "--out", target],
        "eval --json": ["eval", "--pred", "pred", "--truth", "truth", "--source", "src", "--json", target],
        "sweep --out": ["sweep", "sweep.yaml", "--out", target, "--no-track"],
        "bench archs --out": [*BENCH, "--out", target],
        "bench archs --report": [*BENCH, "--out", "bench", "--report", target],
        "cloud launch --out": ["cloud", "launch", "--config", "run/config.yaml", "--source", "src", "--target", "keys",
                               "--dry-run", "--out", target],
        "suggest --json": ["suggest", "--source", "src", "--count", "2", "--have", "keys", "--device", "cpu",
                           "--json", target],
        "suggest --sheet": ["suggest", "--source", "src", "--run", "run", "--device", "cpu", "--sheet", target],
    }


BENCH = ["bench", "archs", "--source", "src", "--target", "keys", "--truth", "truth", "--archs", "unet_attn",
         "--steps", "1", "--seeds", "1", "--no-track"]


# Each input folder, as a plate of it and as a new file of the option's own kind inside it; the run's own files.
TARGETS = [f"{folder}/{name}" for folder in ("src", "keys", "truth", "pred")
           for name in (PLATE, "new.onnx", "new.pt", "new.json", "new.mp4", "new")] + [
    "src", "keys/", "truth", "pred", "run/model.pt", "run/checkpoints", "run/checkpoints/new"]

# Which inputs each command reads (a render or an export reads the run, which names its source and keyframes).
READS = {"train": ("src", "keys"), "render": ("src", "keys", "run"), "export": ("src", "keys", "run"),
         "eval": ("src", "truth", "pred"), "sweep": ("src", "keys", "truth"), "bench": ("src", "keys", "truth"),
         "cloud": ("src", "keys"), "suggest": ("src", "keys", "run")}


# What a refusal says: among the inputs, over an input, the wrong kind of file, or over files not shotfit's.
REFUSALS = ("is inside the", "itself", "must end in", "is not empty and is not a shotfit run folder",
            "is a file, not a folder")
KIND_NAMES = {"train --out": "run", "train --tensorboard": "tb", "render --out": "render",
              "render --review": "review.mp4", "export onnx --out": "model.onnx",
              "export torchscript --out": "model.pt", "eval --json": "report.json", "sweep --out": "sweep",
              "bench archs --out": "bench", "bench archs --report": "report", "cloud launch --out": "cloud",
              "suggest --json": "picks.json", "suggest --sheet": "worst.png"}


@pytest.mark.parametrize("option", list(_outputs("x")))
def test_no_output_option_writes_among_the_inputs(shot: Path, option: str):
    for target in TARGETS:
        if not target.startswith(READS[option.split()[0]]):
            continue  # not an input of this command
        before = snapshot(shot)
        line = fails(*_outputs(target)[option])
        assert any(reason in line for reason in REFUSALS), (option, target, line)
        assert_unchanged(before, shot)
    # a name of the option's own kind inside a folder of inputs is refused for being there, not for its name
    before = snapshot(shot)
    line = fails(*_outputs("src/" + KIND_NAMES[option])[option])
    # a sweep file's paths and bench's are resolved (the shot is read from anywhere): the folder is named in full
    assert "inside the source folder '" in line and "src/'" in line, (option, line)
    assert_unchanged(before, shot)


def test_render_again_replaces_its_own_review_movie_but_not_a_foreign_one(shot: Path):
    render = ["render", "--run", "run", "--source", "src", "--out", "render", "--device", "cpu"]
    succeeds(*render, "--review", "review.mp4")
    succeeds(*render, "--review", "review.mp4")
    Path("cut.mp4").write_bytes(b"the editor's cut")
    line = fails(*render, "--review", "cut.mp4")
    assert "'cut.mp4' already exists and was not made by shotfit" in line and line.endswith("(--review)"), line
    assert Path("cut.mp4").read_bytes() == b"the editor's cut"


def test_suggest_again_replaces_its_own_sheet_but_not_a_foreign_picture(shot: Path):
    suggest = ["suggest", "--source", "src", "--run", "run", "--device", "cpu"]
    succeeds(*suggest, "--sheet", "worst.png")
    succeeds(*suggest, "--sheet", "worst.png")
    Path("board.png").write_bytes(b"the artist's mood board")
    line = fails(*suggest, "--sheet", "board.png")
    assert "'board.png' already exists and was not made by shotfit" in line and line.endswith("(--sheet)"), line
    assert Path("board.png").read_bytes() == b"the artist's mood board"


def test_eval_again_replaces_its_own_report(shot: Path):
    succeeds("render", "--run", "run", "--source", "src", "--out", "render", "--device", "cpu")
    succeeds("eval", "--pred", "render", "--truth", "truth", "--json", "report.json")
    succeeds("eval", "--pred", "render", "--truth", "truth", "--json", "report.json")
