"""README.md against the CLI: every option a command takes is documented, every option a
README command line passes exists, and the model kinds the README lists are the ones the
help names. A new user has only the README; it must not promise a flag that is gone or hide
one that exists."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer

from snapshot_tool.cli import app

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _commands() -> dict[str, Any]:
    return dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def _options(command: Any) -> set[str]:
    """Every spelling of every option, negations (--no-force) and short names included."""
    names: set[str] = set()
    for param in command.params:
        names.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("-"))
    return names


def _primary_options(command: Any) -> list[str]:
    """The spellings a user reads first: the long name and the short one; a --no-X is
    documented by its flag pair (--force/--no-force) or by the option it negates."""
    return [o for p in command.params for o in p.opts if o.startswith("-") and o != "--help"]


def _command_lines() -> list[tuple[str, list[str]]]:
    """(command, options) of every `snapshot-tool CMD ...` line in the README's fenced
    blocks: examples (continued with a backslash) and synopses (continued on indented lines
    that open with `[`). Options are taken from bracketed synopsis parts too
    (`[--latency/--no-latency]`); quoted values and comments are skipped."""
    lines: list[tuple[str, list[str]]] = []
    for block in re.findall(r"^ *```[a-z]*\n(.*?)^ *```", README, re.S | re.M):
        text = re.sub(r"\\\n\s*", " ", block)
        text = re.sub(r"\n\s+\[", " [", text)
        for line in text.splitlines():
            match = re.search(r"(?:^|[\s)$])snapshot-tool (\w+)(.*)", line)
            if match is None:
                continue
            args = re.sub(r"\"[^\"]*\"|'[^']*'", " ", match.group(2)).split("#", 1)[0]
            options = re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", args)
            lines.append((match.group(1), options))
    return lines


def _recipe_lines() -> list[tuple[str, str, list[str]]]:
    """(file, command, options) of the snapshot-tool calls in the Makefile and the CI
    examples the README points to: backslash continuations joined, and a YAML folded
    scalar's lines that go on with an option."""
    root = Path(__file__).resolve().parents[2]
    found: list[tuple[str, str, list[str]]] = []
    for path in [root / "Makefile", *sorted((root / "examples" / "ci").glob("*.yml"))]:
        text = re.sub(r"\\\n\s*", " ", path.read_text(encoding="utf-8"))
        text = re.sub(r"\n\s+(?=--)", " ", text)
        for line in text.splitlines():
            match = re.search(r"snapshot-tool (record|compare|show|verify|accept|status|"
                              r"inspect|calibrate)\b(.*)", line)
            if match is not None and not line.lstrip().startswith("#"):
                # Up to the end of the shell command (the demo checks `$$?` after a `;`).
                args = re.sub(r"\"[^\"]*\"|'[^']*'", " ", match.group(2)).split(";")[0]
                found.append((path.name, match.group(1),
                              re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", args)))
    return found


def test_the_makefile_and_ci_examples_pass_only_existing_options() -> None:
    commands = _commands()
    lines = _recipe_lines()
    files = {f for f, _, _ in lines}
    assert {"Makefile", "github-actions.yml", "gitlab-ci.yml"} <= files, files
    wrong = [f"{f}: {name} {o}" for f, name, args in lines for o in args
             if o not in _options(commands[name])]
    assert not wrong, f"options these commands do not take: {wrong}"


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_option_of_a_command_is_in_the_readme(name: str) -> None:
    missing = [o for o in _primary_options(_commands()[name])
               if not re.search(re.escape(o) + r"(?![\w-])", README)]
    assert not missing, f"snapshot-tool {name} takes {missing}, which README.md never names"


def test_every_option_a_readme_command_line_passes_exists() -> None:
    commands = _commands()
    lines = _command_lines()
    assert len(lines) > 30  # the walk found the README's examples and synopses
    wrong = []
    for name, args in lines:
        assert name in commands, f"README runs `snapshot-tool {name}`, which does not exist"
        known = _options(commands[name])
        wrong += [f"{name} {o}" for o in args if o not in known]
    assert not wrong, f"README passes options these commands do not take: {wrong}"


def test_model_help_names_every_kind_the_readme_lists() -> None:
    table = README.split("| MODEL ", 1)[1].split("\n\n", 1)[0]
    suffixes = set(re.findall(r"`\*(\.\w+)`", table))
    assert suffixes == {".tflite", ".keras", ".h5", ".hdf5", ".pb"}, suffixes
    for name in ("record", "compare", "inspect"):
        model = next(p for p in _commands()[name].params if p.name == "model")
        assert all(s in model.help for s in suffixes), (name, model.help)


def test_every_module_is_in_the_layout_table() -> None:
    # The README's "Layout of snapshot_tool/" is how a newcomer finds the owner of a concept.
    package = Path(__file__).resolve().parents[2] / "snapshot_tool"
    table = README.split("| module | what it holds |", 1)[1].split("\n\n", 1)[0]
    missing = [str(p.relative_to(package)) for p in sorted(package.rglob("*.py"))
               if not p.name.startswith("__") and f"`{p.name}`" not in table]
    assert not missing, f"modules the README's layout table does not name: {missing}"


def test_no_install_hint_fetches_snapshot_tool_from_pypi() -> None:
    # This project is installed from its repository; `pip install 'snapshot-tool[...]'` would
    # fetch another project's package of that name from PyPI. Hints install the extra's
    # packages themselves, and docs install from a checkout.
    root = Path(__file__).resolve().parents[2]
    texts = {p.relative_to(root): p.read_text(encoding="utf-8")
             for p in [root / "README.md", *sorted((root / "examples").rglob("*.yml")),
                       *sorted((root / "snapshot_tool").rglob("*.py"))]}
    wrong = [str(path) for path, text in texts.items()
             if re.search(r"pip install [\"']?snapshot-tool", text)]
    assert not wrong, f"installs snapshot-tool from PyPI: {wrong}"
