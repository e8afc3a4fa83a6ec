"""The ``snapshot-tool`` command line: parse options, call the library, render, exit.

Exit codes (a stable contract): 0 pass, 1 regression found, 2 usage or input error.
This is the only module that prints. Heavy imports happen inside the commands, so that
``snapshot-tool --help`` answers without loading TensorFlow.
"""

from __future__ import annotations

import contextlib
import gc
import json
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from snapshot_tool import cancel
from snapshot_tool.errors import SnapshotToolError

EXIT_PASS, EXIT_REGRESSION, EXIT_USAGE = 0, 1, 2

app = typer.Typer(
    name="snapshot-tool",
    help="Golden-file regression gate for TensorFlow models: record a known-good model's "
         "outputs, then compare candidates against them.\n\n"
         "Exit codes: 0 pass, 1 regression found, 2 usage or input error.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help texts quote config tables such as [tool.snapshot-tool]; rich markup would eat them.
    rich_markup_mode=None,
)

F = TypeVar("F", bound=Callable[..., Any])


def _no_color() -> bool | None:
    # https://no-color.org: any non-empty NO_COLOR turns colour off. rich reads it too; saying
    # it here keeps every console of this CLI honest whatever rich's version does.
    import os

    return True if os.environ.get("NO_COLOR") else None


def _stderr() -> Any:
    from rich.console import Console

    from snapshot_tool.terminal import console_width

    return Console(stderr=True, highlight=False, width=console_width(sys.stderr),
                   no_color=_no_color())


def _warn(markup: str) -> None:
    # soft_wrap: one line per warning whatever its length. stderr is rarely a terminal on CI,
    # where rich would fold at 80 columns and a grep for "warning:" would find half of it.
    _stderr().print(f"[yellow]warning:[/] {markup}", soft_wrap=True)


def _stdout() -> Any:
    from rich.console import Console

    from snapshot_tool.terminal import console_width

    return Console(highlight=False, width=console_width(sys.stdout), no_color=_no_color())


def fail(message: str) -> typer.Exit:
    # One line, plain text: scripts grep for "error:" and humans read the fix in it.
    one_line = " ".join(message.split())
    print(f"error: {one_line}", file=sys.stderr)
    return typer.Exit(EXIT_USAGE)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
        # A stop a finalizer swallowed after the last progress step: still a stop.
        cancel.raise_if_stopped()
    except SnapshotToolError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt as exc:
        what, code = (("terminated", 143) if isinstance(exc, cancel.Terminated)
                      else ("interrupted", 130))
        print(f"error: {what}; no golden was written or changed", file=sys.stderr)
        raise typer.Exit(code) from None
    except MemoryError:
        raise fail("out of memory; try a smaller --num-samples or --batch-size") from None
    except PermissionError as exc:
        raise fail(f"permission denied: {exc.filename or exc}") from None
    except OSError as exc:
        # Disk full, read-only file system, too many open files: the environment, not a
        # bug, and a one-line answer is what a CI log needs.
        where = f" ({exc.filename})" if exc.filename else ""
        raise fail(f"{exc.strerror or exc}{where}") from None


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar on stderr, so stdout stays clean for reports and JSON."""
    if not enabled or not sys.stderr.isatty():
        # Each step is also where a stop that a finalizer swallowed is raised again.
        yield lambda stage, done, total: cancel.raise_if_stopped()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    tasks: dict[str, Any] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=_stderr(), transient=True) as bar:

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)
            cancel.raise_if_stopped()

        yield update


ModelArg = Annotated[Path, typer.Argument(
    help="SavedModel directory (TF2 or TF1), .tflite, .keras, legacy Keras .h5/.hdf5 or "
         "frozen-graph .pb file.",
    show_default=False, metavar="MODEL")]
GoldenOpt = Annotated[Path, typer.Option("--golden", "-g", help="Golden HDF5 file.",
                                         show_default=False, metavar="G.h5")]
TagOpt = Annotated[str, typer.Option("--tag", help="SavedModel tag set (comma-separated).")]
QuietOpt = Annotated[bool, typer.Option(
    "--quiet", "-q", help="Print nothing but errors and, on failure, the verdict lines.")]
RunnerOpt = Annotated[str, typer.Option(
    "--runner", help="in-process, or beam: an Apache Beam pipeline over workers (needs "
                     "snapshot-tool[beam]; latency is skipped). See README, \"Larger than "
                     "one machine\".", metavar="in-process|beam")]
AllowOpsOpt = Annotated[str | None, typer.Option(
    help="Let the model run these ops although they touch the file system or print (see "
         "`inspect --scan`); comma-separated, e.g. PrintV2,ReadFile.", metavar="OP,OP")]
RequireSignatureOpt = Annotated[bool, typer.Option(
    help="Refuse a golden that is not signed with the HMAC key in SNAPSHOT_TOOL_HMAC_KEY "
         "(see `record --sign`).")]
BeamArgOpt = Annotated[list[str] | None, typer.Option(
    "--beam-arg", help="A Beam pipeline option KEY=VALUE, repeatable, e.g. "
                       "runner=DataflowRunner, direct_num_workers=2.", metavar="KEY=VALUE")]


RecordSignatureOpt = Annotated[str | None, typer.Option(
    "--signature", help="Signature to record (default: serving_default, else serve, else the "
                        "only one); 'all' records every one.")]
InputsOpt = Annotated[Path | None, typer.Option(
    "--inputs", help="Inputs file: .npz or .h5 (arrays named like the inputs), .npy (a "
                     "single-input signature's one array), or .tfrecord of "
                     "tf.train.Example for a signature taking serialized examples. "
                     "Default: synthesized from the signature with --seed.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for synthesized inputs.")]
NumSamplesOpt = Annotated[int, typer.Option("--num-samples", help="Samples to synthesize.")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", help="Samples per model call.")]
LabelsOpt = Annotated[str | None, typer.Option(
    "--labels", help="Ground truth for task metrics: FILE[:KEY] (.npz/.h5/.npy). A KEY of the "
                     "--inputs file is not fed to the model.", metavar="FILE[:KEY]")]
RecordConfigOpt = Annotated[Path | None, typer.Option(
    "--config", help="Config with [outputs.NAME] task/threshold overrides for metrics.")]
RecordLatencyOpt = Annotated[bool, typer.Option(
    "--latency/--no-latency", help="Measure latency baselines.")]
LatencySizesOpt = Annotated[str | None, typer.Option(
    "--latency-batch-sizes", help="Comma-separated batch sizes to time (default: 1 and "
                                  "--batch-size).", metavar="N,N")]
ForceOpt = Annotated[bool, typer.Option("--force/--no-force",
                                        help="Replace an existing golden.")]
ShardsOpt = Annotated[int, typer.Option(
    "--shards", help="With --runner beam: shard goldens to write (the golden is a directory, "
                     "G.h5.d).")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", metavar="NAME=VALUE",
    help="Value of a scalar (rank-0) input, a setting such as a TF1 keep_prob or "
         "is_training or a temperature, fed with every batch and stored in the golden "
         "(true/false for a bool). Repeatable; with or without --inputs.")]
SignOpt = Annotated[bool, typer.Option(
    "--sign/--no-sign", help="Sign the golden with the HMAC key in the environment variable "
                             "SNAPSHOT_TOOL_HMAC_KEY, for `compare --require-signature`.")]


@app.command()
def record(
    model: ModelArg,
    golden: GoldenOpt,
    signature: RecordSignatureOpt = None,
    inputs: InputsOpt = None,
    seed: SeedOpt = 0,
    num_samples: NumSamplesOpt = 64,
    batch_size: BatchSizeOpt = 16,
    labels: LabelsOpt = None,
    config: RecordConfigOpt = None,
    latency: RecordLatencyOpt = True,
    latency_batch_sizes: LatencySizesOpt = None,
    force: ForceOpt = False,
    tag: TagOpt = "serve",
    quiet: QuietOpt = False,
    runner: RunnerOpt = "in-process",
    beam_arg: BeamArgOpt = None,
    shards: ShardsOpt = 8,
    sign: SignOpt = False,
    allow_ops: AllowOpsOpt = None,
    set_: SetOpt = None,
) -> None:
    """Run a known-good MODEL over fixed inputs and write a golden file."""
    with user_errors(), progress_bar(not quiet) as progress:
        _check_runner(runner, beam_arg)
        from snapshot_tool.inputs.settings import parse_settings
        from snapshot_tool.models.scan import parse_allow_ops
        from snapshot_tool.record import RecordOptions

        _refuse_overwriting({"--golden": golden}, {
            "the model being recorded": model, "the --inputs file": inputs,
            # FILE:KEY, or a file whose name holds a colon: both are read.
            "the --labels file": Path(labels.rsplit(":", 1)[0]) if labels else None,
            "the --labels path": Path(labels) if labels else None,
            "the --config file": config})
        options = RecordOptions(
            signature=signature, inputs=inputs, seed=seed, num_samples=num_samples,
            batch_size=batch_size, force=force, tag=tag, labels=labels, config=config,
            latency=latency, latency_batch_sizes=_sizes(latency_batch_sizes), sign=sign,
            allow_ops=parse_allow_ops(allow_ops), settings=parse_settings(set_ or ()))
        if runner == "beam":
            from snapshot_tool.beam.record import record_beam

            result = record_beam(model, golden, options, beam_args=beam_arg or (),
                                 shards=shards, progress=progress)
        else:
            # From its own module, not snapshot_tool.api: the API also re-exports calibrate
            # and localize, whose modules a plain record never needs to import.
            from snapshot_tool.record import record_with

            result = record_with(model, golden, options, progress)
    if not quiet:
        _print_recorded(result)


def _print_recorded(result: Any) -> None:
    from rich.markup import escape

    out = _stdout()
    over = (f"over {result.num_samples} samples (batch size {result.batch_size})"
            if result.num_samples else "from one call (no input has a sample dimension)")
    # Paths and names are user data: a "[v2]" in a path must print, not be read as markup.
    out.print(f"[bold green]recorded[/] {escape(str(result.golden))}: {len(result.outputs)} "
              f"output(s) of {escape(', '.join(result.signatures))} {over}")
    for w in result.warnings:
        _warn(escape(w))


CompareConfigOpt = Annotated[Path | None, typer.Option(
    "--config", help="Tolerance config (snapshot.toml). Default: ./snapshot.toml, else "
                     "[tool.snapshot-tool] in ./pyproject.toml.")]
CompareSignatureOpt = Annotated[str | None, typer.Option(
    "--signature", help="Check only this signature of the golden.")]
BaselineOpt = Annotated[Path | None, typer.Option(
    "--baseline-model", help="Known-good model to time side by side with MODEL (the latency "
                             "gate). Without it, latency is checked against the golden's "
                             "stored samples.")]
CheckLatencyOpt = Annotated[bool, typer.Option("--latency/--no-latency",
                                               help="Check latency.")]
StrictOpt = Annotated[bool, typer.Option(
    "--latency-strict/--no-latency-strict",
    help="Treat an inconclusive latency verdict as a failure (exit 1).")]
SelfCheckOpt = Annotated[bool | None, typer.Option(
    "--self-check/--no-self-check", help="Stored latency mode: re-time the golden's own "
    "model (its model_path, if unchanged) beside MODEL and judge MODEL against it as the "
    "machine is now. Default: whenever that model is still on disk; --self-check warns "
    "when it is not, --no-self-check judges on the stored samples alone.")]
JsonReportOpt = Annotated[Path | None, typer.Option(
    "--report-json", help="Write the full result as JSON here.")]
JunitOpt = Annotated[Path | None, typer.Option(
    "--junit", help="Write a JUnit XML report here (one test case per check).")]
MarkdownOpt = Annotated[Path | None, typer.Option(
    "--markdown", help="Write a Markdown summary here (for PR comments and CI job "
                       "summaries).")]
CompareTagOpt = Annotated[str | None, typer.Option(
    "--tag", help="SavedModel tag set (comma-separated). Default: the one the golden was "
                  "recorded with.")]
LocalizeOpt = Annotated[bool, typer.Option(
    "--localize", help="When outputs fail, re-run the golden's model (--baseline-model, else "
                       "the golden's model_path) and MODEL on the first failing batch and "
                       "report the first diverging layer/op/tensor.")]
HtmlOpt = Annotated[Path | None, typer.Option(
    "--html", help="Write a self-contained HTML report with plots here (needs the html "
                   "extra: matplotlib).")]
SaveObtainedOpt = Annotated[bool | None, typer.Option(
    "--save-obtained/--no-save-obtained",
    help="Write the candidate's own golden (G.obtained.h5 beside G.h5) for review and "
         "`snapshot-tool accept`. Default: only when outputs or metrics fail.",
    show_default=False)]
MapOpt = Annotated[list[str] | None, typer.Option(
    "--map", metavar="OLD=NEW",
    help="The candidate calls the golden's input or output OLD by the name NEW (a "
         "converter renamed it). Repeatable; adds to the config's [rename] table.")]


@app.command()
def compare(
    model: ModelArg,
    golden: GoldenOpt,
    config: CompareConfigOpt = None,
    signature: CompareSignatureOpt = None,
    baseline_model: BaselineOpt = None,
    latency: CheckLatencyOpt = True,
    latency_strict: StrictOpt = False,
    self_check: SelfCheckOpt = None,
    report_json: JsonReportOpt = None,
    junit: JunitOpt = None,
    markdown: MarkdownOpt = None,
    tag: CompareTagOpt = None,
    localize: LocalizeOpt = False,
    html: HtmlOpt = None,
    save_obtained: SaveObtainedOpt = None,
    quiet: QuietOpt = False,
    runner: RunnerOpt = "in-process",
    beam_arg: BeamArgOpt = None,
    rename: MapOpt = None,
    require_signature: RequireSignatureOpt = False,
    allow_ops: AllowOpsOpt = None,
) -> None:
    """Replay the golden's inputs through candidate MODEL and judge it. Exit 1 on regression."""
    with user_errors():
        _check_runner(runner, beam_arg)
        from snapshot_tool.compare import CompareOptions
        from snapshot_tool.config import parse_renames
        from snapshot_tool.models.scan import parse_allow_ops

        allowed = parse_allow_ops(allow_ops)
        from snapshot_tool.golden.schema import obtained_path

        _refuse_overwriting(
            {"--report-json": report_json, "--junit": junit, "--markdown": markdown,
             "--html": html},
            {"the golden": golden,
             # "." or "/" has no name to derive one from; compare refuses it as a golden.
             "where the obtained golden is written":
                 obtained_path(golden) if golden.name else None,
             "the candidate model": model, "the baseline model": baseline_model})
        if html is not None:
            from snapshot_tool.report.html import require_matplotlib

            require_matplotlib()  # before the model runs, not after
        options = CompareOptions(
            config=config, signature=signature, tag=tag, latency=latency,
            # Without latency, --baseline-model serves --localize only; compare would
            # otherwise warn that it was ignored.
            baseline_model=baseline_model if latency or not localize else None,
            latency_strict=latency_strict, self_check=self_check,
            save_obtained="on_failure" if save_obtained is None else
            "always" if save_obtained else "never",
            error_summaries=True if html is not None else None,
            rename=parse_renames(rename or []), require_signature=require_signature,
            allow_ops=allowed)
        with progress_bar(not quiet) as progress:
            result = _run_compare(model, golden, options, runner, beam_arg or [], progress)
        where = _localize(model, golden, options, baseline_model, result) if localize \
            else None
        _write_reports(result, where, report_json=report_json, junit=junit,
                       markdown=markdown, html=html)
    _print_compared(result, where, quiet)
    raise typer.Exit(EXIT_PASS if result.passed else EXIT_REGRESSION)


def _refuse_overwriting(outputs: Mapping[str, Path | None],
                       inputs: Mapping[str, Path | None]) -> None:
    """A report written over the golden (a tab-completed ``goldens/model.h5`` after
    ``--report-json``) would replace it. Refused before anything runs: every file the command
    writes must differ from the files it reads and from every other file it writes."""
    import os

    taken = {os.path.realpath(p): what for what, p in inputs.items() if p is not None}
    for option, path in outputs.items():
        if path is None:
            continue
        key = os.path.realpath(path)
        if key in taken:
            raise SnapshotToolError(f"{option} {path} is {taken[key]}; writing there would "
                                    "replace it, so give another path")
        taken[key] = f"also the path given to {option}"


def _run_compare(model: Path, golden: Path, options: Any, runner: str, beam_args: list[str],
                 progress: Callable[[str, int, int], None]) -> Any:
    if runner == "beam":
        from snapshot_tool.beam.compare import compare_beam

        return compare_beam(model, golden, options, beam_args=beam_args, progress=progress)
    from snapshot_tool.compare import compare_with  # not via api: see record

    return compare_with(model, golden, options, progress)


def _write_reports(result: Any, where: Any, *, report_json: Path | None, junit: Path | None,
                   markdown: Path | None, html: Path | None) -> None:
    """Every report asked for, each written whole, and the CI job summary."""
    from snapshot_tool.report.junit import to_junit
    from snapshot_tool.report.markdown import to_markdown

    if report_json is not None:
        from snapshot_tool.report.json import to_json

        doc = to_json(result)
        if where is not None:
            from snapshot_tool.diagnose.render import localization_to_json

            doc["localization"] = localization_to_json(where)
        _write_text(report_json, json.dumps(doc, indent=2) + "\n")
    if junit is not None:
        _write_text(junit, to_junit(result))
    summary = to_markdown(result) + _localization_markdown(where)
    if markdown is not None:
        _write_text(markdown, summary)
    if html is not None:
        from snapshot_tool.report.html import comparison_page

        _write_text(html, comparison_page(result, obtained=result.obtained,
                                          localization=where))
    _append_step_summary(summary)


def _print_compared(result: Any, where: Any, quiet: bool) -> None:
    from snapshot_tool.report.console import console_renderables, verdict_lines

    out = _stdout()
    quiet_lines = [] if result.passed else verdict_lines(result)
    for item in quiet_lines if quiet else console_renderables(result):
        # Lines of text are not folded: paths and commands must survive copy and paste.
        out.print(item, soft_wrap=isinstance(item, str))
    # --quiet prints nothing on a pass; a localization with nothing to localize is no news.
    if where is not None and not (quiet and where.status == "passed"):
        from snapshot_tool.diagnose.render import localization_lines

        # Plain print: tensor names hold brackets that rich would read as markup.
        print("\n".join(localization_lines(where)))


def _append_step_summary(markdown: str) -> None:
    """GitHub Actions shows what a step appends to $GITHUB_STEP_SUMMARY on the run's page.
    A summary that cannot be written is worth a warning, not a failed gate."""
    import os

    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return
    try:
        from snapshot_tool.golden.schema import storable

        # A golden whose name is not UTF-8 is escaped, as the golden and reports write it.
        with open(target, "a", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(storable(markdown) + "\n")
    except OSError as exc:
        from rich.markup import escape

        _warn(f"cannot append to GITHUB_STEP_SUMMARY ({escape(target)}): "
              f"{escape(str(exc.strerror or exc))}")


def _localization_markdown(where: Any) -> str:
    if where is None:
        return ""
    from snapshot_tool.diagnose.render import localization_lines

    body = "\n".join(localization_lines(where))
    return f"\n### Where it diverges (--localize)\n\n```\n{body}\n```\n"


def _localize(model: Path, golden: Path, options: Any, baseline_model: Path | None,
              result: Any) -> Any:
    """Localization is advice on top of the verdict: whatever stops it (a model the golden's
    model_path no longer points at, an untraceable kind) is reported, never turned into an
    exit code of its own."""
    from snapshot_tool.api import localize as do_localize
    from snapshot_tool.diagnose.divergence import Localization

    if result.outputs_passed:
        return Localization("passed", "every output is within tolerance; nothing to localize")
    try:
        return do_localize(model, golden, baseline_model=baseline_model, config=options.config,
                           signature=options.signature, tag=options.tag, result=result,
                           rename=dict(options.rename), allow_ops=options.allow_ops)
    except SnapshotToolError as exc:
        return Localization("unsupported", str(exc))


@app.command()
def calibrate(
    golden: Annotated[Path, typer.Argument(help="Golden HDF5 file.", show_default=False,
                                           metavar="G.h5")],
    candidates: Annotated[list[Path], typer.Argument(
        help="Candidates you declare acceptable: models of any kind, or goldens recorded "
             "over the same inputs (another machine's run).", show_default=False,
        metavar="CANDIDATE...")],
    reject: Annotated[list[Path] | None, typer.Option(
        "--reject", help="A known-broken candidate the proposal must still fail "
                         "(repeatable).", metavar="MODEL")] = None,
    margin: Annotated[float, typer.Option(
        help="Factor on the worst error or metric drop seen.")] = 2.0,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the proposed snapshot.toml here (default: print it).",
        metavar="PATH")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing --output file.")] = False,
    signature: Annotated[str | None, typer.Option(
        help="Calibrate only this signature of the golden.")] = None,
    report_json: Annotated[Path | None, typer.Option(
        help="Write the evidence, proposal and verdicts as JSON here.")] = None,
    tag: Annotated[str | None, typer.Option(
        "--tag", help="SavedModel tag set. Default: the one the golden was recorded "
                      "with.")] = None,
    rename: Annotated[list[str] | None, typer.Option(
        "--map", metavar="OLD=NEW",
        help="Candidates call the golden's input or output OLD by the name NEW (a converter "
             "renamed it). Repeatable.")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="Config whose [models] allow_ops the candidates may run, as compare "
                         "reads it. Default: ./snapshot.toml, else [tool.snapshot-tool] in "
                         "./pyproject.toml.")] = None,
    allow_ops: AllowOpsOpt = None,
) -> None:
    """Propose per-output tolerances and metric limits that accept every CANDIDATE with a
    margin, each commented with its evidence. Exit 1 when the evidence is inconsistent (an
    acceptable candidate no tolerance accepts, or a --reject candidate that passes)."""
    with user_errors():
        from snapshot_tool.api import calibrate as do_calibrate
        from snapshot_tool.config import parse_renames
        from snapshot_tool.diagnose.render import calibration_lines, calibration_to_json
        from snapshot_tool.models.scan import parse_allow_ops

        renames = parse_renames(rename or [])
        allowed = parse_allow_ops(allow_ops)
        _refuse_overwriting({"--output": output, "--report-json": report_json},
                           {"the golden": golden,
                            **{f"the model {c}": c for c in [*candidates, *(reject or [])]}})
        with progress_bar() as progress:
            cal = do_calibrate(golden, candidates, reject=reject or [], margin=margin,
                               signature=signature, tag=tag, output=output, force=force,
                               progress=progress, rename=renames, config=config,
                               allow_ops=allowed)
        if report_json is not None:
            _write_text(report_json, json.dumps(calibration_to_json(cal), indent=2) + "\n")
    if output is None:
        print(cal.toml)
    else:
        print(f"wrote the proposed config to {output}")
    print("\n".join(calibration_lines(cal)))
    raise typer.Exit(EXIT_PASS if cal.consistent else EXIT_REGRESSION)


def _check_runner(runner: str, beam_args: list[str] | None) -> None:
    from snapshot_tool.beam import check_runner

    check_runner(runner)
    if beam_args and runner != "beam":
        raise SnapshotToolError("--beam-arg needs --runner beam")


def _sizes(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SnapshotToolError(f"--latency-batch-sizes {text!r}: expected comma-separated "
                                "integers such as 1,16") from None
    if not sizes or min(sizes) < 1:
        raise SnapshotToolError(f"--latency-batch-sizes {text!r}: sizes must be positive")
    return tuple(sizes)


def _write_text(path: Path, text: str) -> None:
    # Whole or not at all: a CI step reading a half-written report would misreport.
    from snapshot_tool.atomic import write_text

    try:
        write_text(path, text)
    except OSError as exc:
        raise SnapshotToolError(f"cannot write report {path}: {exc.strerror or exc}; the "
                                "previous report (if any) is unchanged") from None


@app.command()
def show(
    golden: Annotated[Path, typer.Argument(help="Golden HDF5 file.", show_default=False,
                                           metavar="G.h5")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    html: Annotated[Path | None, typer.Option(
        "--html", help="Write a self-contained HTML page of the golden (value and latency "
                       "distributions) here.")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Show what a golden file holds."""
    with user_errors():
        from snapshot_tool.golden.describe import describe_golden

        _refuse_overwriting({"--html": html}, {"the golden": golden})
        info = describe_golden(golden)
        if html is not None:
            from snapshot_tool.golden.io import read_golden
            from snapshot_tool.report.html import golden_page, require_matplotlib

            require_matplotlib()
            _write_text(html, golden_page(read_golden(golden)))
            if not quiet:
                print(f"wrote {html}")
            return
    if quiet:
        return  # the golden was read and checked; nothing else was asked for
    if as_json:
        from snapshot_tool.report.json import json_safe

        print(json.dumps(json_safe(info), indent=2, default=str))
        return
    from snapshot_tool.report.console import show_renderables

    out = _stdout()
    for item in show_renderables(info):
        out.print(item)


@app.command()
def inspect(
    model: ModelArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    tag: TagOpt = "serve",
    scan: Annotated[bool, typer.Option(
        "--scan", help="Also list, per signature, the ops it runs that touch the file "
                       "system or print (what record and compare refuse).")] = False,
) -> None:
    """List a model's signatures with input/output names, dtypes and shapes."""
    with user_errors():
        from snapshot_tool.models.load import load_model

        loaded = load_model(model, tag=tag)
        sigs = loaded.signatures
        found = loaded.scan() if scan else None
    from snapshot_tool.report.console import inspect_doc, inspect_renderables

    if as_json:
        print(json.dumps(inspect_doc(str(model), loaded.kind, sigs, loaded.notes,
                                     scanned=scan, scan=found), indent=2))
        return
    out = _stdout()
    lines = {name: _scan_text(found, name) for name in sigs} if scan else None
    for item in inspect_renderables(str(model), loaded.kind, sigs, lines):
        out.print(item)
    for note in loaded.notes:
        out.print(f"\nnote: {note}", markup=False, soft_wrap=True)


def _scan_text(found: dict[str, list[str]] | None, signature: str) -> str:
    from snapshot_tool.models.scan import FLAGGED_OPS

    if found is None:
        return "not available for this kind of model"
    ops = found.get(signature, [])
    if not ops:
        return "clean: no op touches the file system or prints"
    return "FLAGGED: " + ", ".join(f"{op} ({FLAGGED_OPS[op]})" for op in ops)


@app.command()
def verify(golden: Annotated[Path, typer.Argument(help="Golden HDF5 file.",
                                                  show_default=False, metavar="G.h5")],
           quiet: QuietOpt = False,
           require_signature: RequireSignatureOpt = False) -> None:
    """Check a golden exactly as compare does before using it: schema, attribute types,
    sizes, checksums, content digest (and signature). Exit 0 intact, 2 not."""
    with user_errors():
        from snapshot_tool.golden.io import verify_golden

        found = verify_golden(golden, require_signature=require_signature)
    if not quiet:
        signed = ", signed" if found.signed else ""
        print(f"ok: {golden} is intact (format v{found.version}, {found.tensors} tensors and "
              f"{found.datasets} datasets checked{signed})")


@app.command()
def accept(
    obtained: Annotated[Path, typer.Argument(
        help="Obtained golden written by a failing compare (G.obtained.h5).",
        show_default=False, metavar="G.obtained.h5")],
    golden: Annotated[Path | None, typer.Option(
        "--golden", "-g", help="Golden to promote it into. Default: the one compare "
                               "recorded in it (G.h5 beside it).", show_default=False,
        metavar="G.h5")] = None,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="Take only the outputs matching this glob (and their metrics); "
                       "repeatable. Every other dataset stays byte-identical.",
        metavar="GLOB")] = None,
    reason: Annotated[str, typer.Option(
        help="Why the change is right; stored in the golden's history.")] = "",
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show what would change; change nothing.")] = False,
    allow_ci: Annotated[bool, typer.Option(
        "--allow-ci", help="Run although the CI environment variable is set.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Promote an obtained golden into the golden, after showing what changes."""
    with user_errors():
        from snapshot_tool.accept import accept as do_accept
        from snapshot_tool.accept import plan

        if _on_ci() and not allow_ci and not dry_run:
            raise SnapshotToolError(
                "CI is set: goldens are not accepted on CI, where nobody reviews the change. "
                "Download the obtained golden (a CI artifact), review it and accept it "
                "locally, or pass --allow-ci")
        the_plan = plan(obtained, golden, only or ())[0] if dry_run else \
            do_accept(obtained, golden, only or (), reason)
    if quiet:
        return
    from snapshot_tool.report.console import accept_renderables

    out = _stdout()
    for item in accept_renderables(the_plan, dry_run=dry_run):
        out.print(item)


def _on_ci() -> bool:
    from snapshot_tool.accept import on_ci

    return on_ci()


@app.command()
def status(
    folder: Annotated[Path, typer.Argument(
        help="Folder to scan for goldens (recursively).", metavar="DIR")] = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="List only the goldens that need attention (model changed or "
                              "missing, an obtained golden waiting, unreadable).")] = False,
) -> None:
    """List goldens with model, digest, age and format; flag those whose model changed on
    disk or that have an obtained golden waiting."""
    with user_errors():
        from snapshot_tool.status import golden_status

        found = golden_status(folder)
    if as_json:
        if quiet:  # the same goldens as the quiet table
            found = [g for g in found if g.stale]
        print(json.dumps([{
            "path": str(g.path), "format_version": g.format_version, "created": g.created,
            "age_days": g.age_days, "model_path": g.model_path, "model_digest": g.model_digest,
            "model_state": g.model_state,
            "obtained": str(g.obtained) if g.obtained is not None else None,
            "accepted": g.accepted, "problem": g.problem or None} for g in found], indent=2))
        return
    from snapshot_tool.report.console import status_renderables

    out = _stdout()
    for item in status_renderables(found, folder, only_stale=quiet):
        out.print(item)


def main() -> None:
    from snapshot_tool.terminal import output_error, prepare_streams

    prepare_streams()
    cancel.install()
    try:
        app()
    except SystemExit as exc:
        # A stop that landed where no command catches it (while the tool starts, or prints)
        # reaches typer, which calls every KeyboardInterrupt 130; SIGTERM's is 143.
        stop = cancel.exit_code()
        code = stop if stop is not None and exc.code == 130 else exc.code
        lost = output_error()
        if lost is not None and stop is None:
            print(f"error: {lost}", file=sys.stderr)
            code = EXIT_USAGE
        raise SystemExit(code) from None
    except KeyboardInterrupt:
        # One before or after typer's own handling: no traceback, the stop's exit code.
        raise SystemExit(cancel.exit_code() or 130) from None
    finally:
        # The command is over; what is left is the interpreter's exit, whose last garbage
        # collections walk every object TensorFlow's import made: 1-4 s of a CLI run on a
        # busy 2-core machine (benchmarks/large_goldens.py), as long as a whole compare of a
        # small golden. Frozen objects are skipped by those walks. Nothing of ours waits on
        # a collection: goldens, reports and temp files are closed by context managers.
        gc.freeze()
