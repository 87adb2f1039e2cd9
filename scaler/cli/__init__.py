"""The ``scaler`` command line: a typer app whose commands are thin wrappers over the library.

Nothing heavy is imported here or in the command modules at import time: TensorFlow, numpy
and matplotlib are imported inside the command functions that need them.
"""

from __future__ import annotations

import sys

from scaler import interrupts

interrupts.quiet_until_main()  # Ctrl-C while the command line loads: one line, exit 130

import typer

try:  # typer >= 0.22 ships its own copy of click
    from typer._click import exceptions as click_exceptions
except ImportError:  # older typer uses click itself
    from click import exceptions as click_exceptions

from scaler.cli import plan as plan_cmd
from scaler.cli import predict as predict_cmd
from scaler.cli import report as report_cmd
from scaler.cli import run as run_cmd
from scaler.cli import show as show_cmd
from scaler.cli import simulate as simulate_cmd
from scaler.cli import suite as suite_cmd
from scaler.cli import topology as topology_cmd

# options a user reaches for on the wrong command: where they live instead
OPTION_HINTS = {
    ("latency", "--instances"): "latency measures one instance per placement: for 1..N "
    "instances at once use `scaler scaling --instances`",
    ("throughput", "--instances"): "throughput measures one instance per placement: for "
    "1..N instances at once use `scaler scaling --instances`",
}


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"scaler {version('scaler')}")
        raise typer.Exit(0)


app = typer.Typer(
    name="scaler",
    help="Measure, plot and predict how CPU deep-learning inference scales across "
    "processes, pinned partitions and VMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """Measure, plot and predict how CPU deep-learning inference scales across processes,
    pinned partitions and VMs."""


app.command("topology")(topology_cmd.topology)
app.command("plan")(plan_cmd.plan)
app.command("latency")(run_cmd.latency)
app.command("throughput")(run_cmd.throughput)
app.command("scaling")(run_cmd.scaling)
app.command("multistream")(run_cmd.multistream)
app.command("server")(run_cmd.server)
app.command("suite")(suite_cmd.suite)
app.command("show")(show_cmd.show)
app.command("plot")(show_cmd.plot)
app.command("compare")(show_cmd.compare)
app.command("fit")(predict_cmd.fit)
app.command("simulate", help=simulate_cmd.SIMULATE_HELP)(simulate_cmd.simulate)
app.command("capacity")(predict_cmd.capacity)
app.command("report", help=report_cmd.REPORT_HELP)(report_cmd.report)
app.command("export", help=report_cmd.EXPORT_HELP)(report_cmd.export)


def main(argv: list[str] | None = None) -> int:
    """Entry point. Usage errors are one line on stderr with exit code 2, never a traceback.
    Run as the command (``argv`` None), Ctrl-C is ignored once it returns: Python restores
    the default SIGINT action while it exits, and a second Ctrl-C landing there killed the
    process by SIGINT (exit -2) after it had said "interrupted" and saved the run."""
    try:
        return _main(argv)
    finally:
        if argv is None:
            interrupts.exiting()


def _main(argv: list[str] | None) -> int:
    from scaler import plugins
    from scaler.errors import UsageError

    command = typer.main.get_command(app)
    try:
        plugins.check()
    except UsageError as exc:
        print(f"scaler: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    try:
        result = command.main(args=argv, prog_name="scaler", standalone_mode=False)
    except click_exceptions.NoArgsIsHelpError as exc:
        # click >= 8.2 raises this for a bare `scaler`; the help is the right answer
        print(exc.ctx.get_help(), file=sys.stderr)
        return 2
    except click_exceptions.ClickException as exc:
        message = " ".join(exc.format_message().split())
        option = getattr(exc, "option_name", None)
        context = getattr(exc, "ctx", None)
        hint = OPTION_HINTS.get((getattr(getattr(context, "command", None), "name", ""), option))
        print(f"scaler: error: {message}" + (f" ({hint})" if hint else ""), file=sys.stderr)
        return 2
    except (typer.Abort, KeyboardInterrupt):
        print("scaler: interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0
