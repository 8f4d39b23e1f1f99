"""Loss plug-ins (``loss.extra`` networks) are code: they run only when this command names them.

A run folder received from someone else holds a config.yaml that may name any ``package.module:callable``.
Resuming it must not import nor call that name unless this command names it (in its config, its
overrides or its allowed plug-ins); when it does, whatever the plug-in raises is one line.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import shots
import yaml
from shots import assert_unchanged, fails, snapshot, succeeds, train_args

# a plug-in whose only trace is the marker file it writes beside itself when it is built
MARKER_PLUGIN = '''
from pathlib import Path
from torch import nn

def build():
    Path(__file__).with_name("plugin_ran").write_text("ran")
    return nn.Identity()
'''


@pytest.fixture(autouse=True)
def _process_state():
    yield from shots.isolated_process_state()


@pytest.fixture
def received(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
             ) -> Iterator[Path]:
    """A trained shot and run (the current directory), and the importable plug-in module ``studio_marker``."""
    shots.copy_trained(tmp_path_factory, tmp_path)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "studio_marker.py").write_text(MARKER_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    monkeypatch.delenv("SHOTFIT_ALLOWED_PLUGINS", raising=False)
    yield tmp_path
    for module in ("studio_marker", "studio_interrupt"):  # the next test's copy lives in its own folder
        sys.modules.pop(module, None)


def name_in_saved_config(run: Path, spec: str) -> None:
    """What a run folder from elsewhere may hold: a config.yaml naming a plug-in."""
    data = yaml.safe_load((run / "config.yaml").read_text())
    data["loss"]["extra"] = [{"network": spec, "weight": 0.5}]
    (run / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.mark.parametrize("spec", ["sys:exit", "builtins:breakpoint", "studio_marker:build"])
def test_resuming_a_received_run_never_runs_the_plugin_its_config_names(received: Path, spec: str):
    name_in_saved_config(received / "run", spec)
    before = snapshot(received)
    line = fails(*train_args("src", "keys", "run", "--resume", steps=6))
    assert line == (f"shotfit: 'run/config.yaml' names the loss plug-in {spec!r} (loss.extra), code that this "
                    "training was not asked to run: to run it, name it in allowed_plugins (--allow-plugin)")
    assert not (received / "plugins" / "plugin_ran").exists()
    assert_unchanged(before, received)


def test_a_plugin_allowed_on_the_command_line_or_in_the_environment_runs(received: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    name_in_saved_config(received / "run", "studio_marker:build")
    succeeds(*train_args("src", "keys", "run", "--resume", "--allow-plugin", "studio_marker:build", steps=4))
    assert (received / "plugins" / "plugin_ran").read_text() == "ran"

    (received / "plugins" / "plugin_ran").unlink()
    monkeypatch.setenv("SHOTFIT_ALLOWED_PLUGINS", "other.module:net studio_marker:build")
    succeeds(*train_args("src", "keys", "run", "--resume", steps=5))
    assert (received / "plugins" / "plugin_ran").is_file()


def test_a_plugin_named_in_this_commands_overrides_runs(received: Path):
    extra = "loss.extra=[{network: 'studio_marker:build', weight: 0.5}]"
    succeeds(*train_args("src", "keys", "fresh", "--set", extra, steps=2))
    assert (received / "plugins" / "plugin_ran").is_file()
    (received / "plugins" / "plugin_ran").unlink()
    # named again when resuming: the override replaces the saved list
    succeeds(*train_args("src", "keys", "fresh", "--resume", "--set", extra, steps=3))
    assert (received / "plugins" / "plugin_ran").is_file()


@pytest.mark.parametrize(("spec", "raised"), [("sys:exit", "SystemExit"),
                                                ("studio_interrupt:build", "KeyboardInterrupt: licence check")])
def test_a_named_plugin_that_exits_or_interrupts_is_one_line(received: Path, spec: str, raised: str):
    (received / "plugins" / "studio_interrupt.py").write_text(
        "def build():\n    raise KeyboardInterrupt('licence check')\n")
    line = fails(*train_args("src", "keys", "fresh", "--set", f"loss.extra=[{{network: '{spec}', weight: 1}}]"))
    callable_name = spec.partition(":")[2]
    assert line == f"shotfit: embedding network {spec!r}: calling {callable_name}() raised {raised}"
