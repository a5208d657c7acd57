"""The ``advnets`` command line (typer + rich).

Bad input of any kind ends with one line on stderr and exit code 2; Ctrl-C or
SIGTERM during training writes a checkpoint at the next step boundary and exits
with 130 or 143; a file that cannot be written during training (a full disk)
ends the run with one line naming it and exit code 1, after a final checkpoint
if that can still be written.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperCommand, TyperGroup
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .errors import AdvnetsError, CaptureError, ConfigError, WriteError, close_matches, exception_line

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True)


def _error_line(message: str) -> None:
    err_console.print(f"[red]error:[/] {escape(' '.join(message.split()))}", soft_wrap=True)


class _BareHelpFlag:
    """``-h, --help`` without a ``<bool>`` type beside it (flags take no value)."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.metavar = ""
        return option


class _Command(_BareHelpFlag, TyperCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:  # an argument taking one or more values: <path>..., not <list[Path]>
            if param.param_type_name == "argument" and param.nargs == -1:
                one = param.bare_type().removeprefix("list[").removesuffix("]").lower()
                param.display_type_rich = lambda ctx, one=one: f"<{one}>..."  # type: ignore[method-assign]


class _Group(_BareHelpFlag, TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:  # typer's --install-completion and --show-completion are flags: no <bool>
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params


class _UserErrorsExit2(_Group):
    """Bad input from any subcommand, ours or click's, becomes one line on stderr and exit code 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except AdvnetsError as exc:
            _error_line(str(exc))
            ctx.exit(2)

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.Abort:
            code = 130
        except SystemExit as exc:  # ours never raise it (typer.Exit, os._exit); typer's completion does
            if _raised_by_our_libraries(exc):
                raise
            _error_line(_plugin_exit_line(exc))  # plugin code called sys.exit
            code = 1
        except Exception as exc:
            code = _usage_error(exc)
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


def _raised_by_our_libraries(exc: BaseException) -> bool:
    """True for the exits of the command line's own libraries: typer's completion, rich's closed pipe."""
    import rich

    frames = traceback.extract_tb(exc.__traceback__)
    ours = [Path(module.__file__).resolve().parent for module in (typer, rich)]
    return bool(frames) and any(Path(frames[-1].filename).resolve().is_relative_to(folder) for folder in ours)


def _plugin_exit_line(exc: SystemExit) -> str:
    """What a ``sys.exit`` in plugin code (a loss, a metric, a callback) did, where: one line.

    Exiting with code 0 in the middle of ``advnets run`` would report a run that never
    finished (and wrote no final checkpoint) as a success, so the command fails instead.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" in {frames[-1].name} ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"plugin code called sys.exit({exc.code!r}){where}: a plugin cannot end a command, so it failed (exit code 1)"


def _usage_error(exc: Exception) -> int:
    """Usage errors (unknown option, bad value, missing argument) as one line; their exit code.

    They are click exceptions; typer vendors click, so they are recognised by shape.
    """
    if not (hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int)):
        raise exc
    if type(exc).__name__ == "NoArgsIsHelpError":  # the help was printed: not an error
        return 0
    ctx = getattr(exc, "ctx", None)
    _error_line(exc.format_message() + (f" (see `{ctx.command_path} --help`)" if ctx else ""))
    return exc.exit_code


app = typer.Typer(
    name="advnets",
    cls=_UserErrorsExit2,
    help="Adversarial nets as a framework: Algorithm 1 of Goodfellow et al. (2014), with plugins.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every subcommand
)
list_app = typer.Typer(cls=_Group, help="See what is installed: components and plugins.", no_args_is_help=True)
app.add_typer(list_app, name="list")

PluginFiles = Annotated[
    Optional[list[Path]],
    typer.Option("--plugin", metavar="PATH", help="Load a plugin from a Python file (repeatable); also ADVNETS_PLUGINS."),
]
Sets = Annotated[
    Optional[list[str]],
    typer.Option("--set", metavar="KEY=VALUE", help="Override a setting: --set trainer.k=2 --set loss=hinge (repeatable)."),
]
Threads = Annotated[
    Optional[int],
    typer.Option(
        min=1,
        metavar="N",
        help="CPU threads for torch: intra-op (set_num_threads) and inter-op (set_num_interop_threads). "
        "Default: torch's own (about one per core).",
    ),
]


def _use_threads(threads: int | None) -> None:
    """--threads N, first thing in a command: inter-op threads can only be set before any parallel work."""
    if threads is None:
        return
    import torch

    if torch.get_num_interop_threads() != threads:  # settable once per process: a second call raises
        torch.set_num_interop_threads(threads)
    torch.set_num_threads(threads)


def _cpu_threads(device: Any) -> str:
    """", 2 threads" for a run on the CPU (what --threads set, or torch's default); "" elsewhere."""
    import torch

    if device.type != "cpu":
        return ""
    n = torch.get_num_threads()
    return f", {n} thread{'s' if n > 1 else ''}"


def _plugins(files: list[Path] | None, source: Path | None = None):
    """Load the plugins: the installed ones, ``--plugin`` files, and the files ``source`` records.

    ``source`` (a run folder, a checkpoint or a config file) may record the plugin files its run
    used (config.json's ``plugin_files``); they load again without ``--plugin`` (see
    :mod:`advnets.provenance`).
    """
    from .provenance import load_for

    plugins, notes = load_for(files or (), source)
    for note in notes:
        err_console.print(f"advnets: {note}", markup=False, highlight=False)
    return plugins


def _version(value: bool) -> None:
    if value:
        out_console.print(f"advnets {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, metavar="", help="Print the version and exit.")
    ] = False,
) -> None:
    pass


# --- run -------------------------------------------------------------------------------


class _StopOnSignal:
    """First SIGINT/SIGTERM: stop at the next step boundary (a checkpoint is written). Second: stop now."""

    def __init__(self) -> None:
        self.trainer: Any = None
        self.signal: int | None = None
        self.last: int = signal.SIGINT
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopOnSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signal is not None or self.trainer is None:
            self.last = signum  # the exit code says which signal ended it: 130 for SIGINT, 143 for SIGTERM
            raise KeyboardInterrupt  # a second signal: leave now; checkpoint writes are atomic
        self.signal = signum
        self.trainer.should_stop = True
        err_console.print(
            f"\n{signal.Signals(signum).name}: stopping after this step and writing a checkpoint "
            "(press Ctrl-C again to stop at once)"
        )


@app.command(cls=_Command)
def run(
    preset: Annotated[
        Optional[str],
        typer.Argument(
            help="A preset (see `advnets list components --kind preset`), or a config file "
            "(.json, .yaml, .yml, .toml) such as a run's config.json."
        ),
    ] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Train for this many epochs in all.")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Train for this many generator steps in all (wins over --epochs).")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for weights, noise and data order.")] = None,
    precision: Annotated[
        Optional[str], typer.Option(help="32, bf16 (CPU and CUDA) or 16 (CUDA): sets trainer.precision.")
    ] = None,
    set_: Sets = None,
    logger: Annotated[
        Optional[list[str]],
        typer.Option(
            "--logger", metavar="NAME", help="Also log to this logger (repeatable): csv, tensorboard, mlflow; jsonl is always on."
        ),
    ] = None,
    no_eval: Annotated[
        bool,
        typer.Option(
            "--no-eval", metavar="", help="No evaluation at all, the closing one included (eval.every_*=0, eval.at_end=false)."
        ),
    ] = False,
    out: Annotated[Optional[Path], typer.Option(help="Run folder (default runs/<preset>-<timestamp>).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder with the dataset's files (sets dataset.data_dir).")] = None,
    resume: Annotated[Optional[Path], typer.Option(
            help="Continue the run in this folder from its newest good checkpoint; --set may change learning rates, "
            "length, eval, loggers and checkpoints (recorded in config.json)."
        )] = None,
    nproc: Annotated[
        Optional[int],
        typer.Option(help="Train with N processes on this machine (launches torchrun; DDP); each gets --threads threads."),
    ] = None,
    threads: Threads = None,
    plugin: PluginFiles = None,
) -> None:
    """Train a GAN: a preset or config file, plus any overrides, then Algorithm 1 with progress, grids and checkpoints."""
    _use_threads(threads)
    from . import distributed

    options = {
        "epochs": epochs, "steps": steps, "device": device, "seed": seed, "precision": precision,
        "data_dir": data_dir, "logger": logger, "no_eval": no_eval,
    }
    if nproc is not None and not distributed.launched():
        if nproc < 1:
            raise ConfigError(f"--nproc must be >= 1, got {nproc}")
        _run(preset, set_, options, out, resume, plugin, check_world_size=nproc)  # bad input: one line, before torchrun
        if threads is not None:  # torchrun would set 1 per worker; each worker also gets --threads
            os.environ["OMP_NUM_THREADS"] = str(threads)
        raise typer.Exit(distributed.launch_local(nproc, distributed.without_option(sys.argv[1:], "--nproc")))
    if distributed.launched():
        distributed.init_from_env()
    try:
        _run(preset, set_, options, out, resume, plugin)
    except typer.Exit as stop:
        distributed.shutdown(wait=True)  # every rank stops alike (signal, fault): leave together
        if distributed.launched():
            distributed.leave(stop.exit_code)
        raise
    except BaseException:
        distributed.shutdown(wait=False)  # torchrun ends the other ranks
        raise
    distributed.shutdown(wait=True)
    if distributed.launched():
        distributed.leave(0)


def _overrides(set_: list[str] | None, options: dict[str, Any]) -> list[tuple[tuple[str, ...], Any]]:
    """``--set`` and the options that are settings, as overrides in the order they apply."""
    from .config import parse_set

    overrides = [parse_set(text) for text in set_ or []]
    data_dir = options.get("data_dir")
    for path, value in (
        (("trainer", "epochs"), options.get("epochs")),
        (("trainer", "steps"), options.get("steps")),
        (("device",), options.get("device")),
        (("seed",), options.get("seed")),
        (("trainer", "precision"), options.get("precision")),
        (("dataset", "data_dir"), None if data_dir is None else str(data_dir)),
        (("logger",), options.get("logger")),
    ):
        if value is not None:
            overrides.append((path, value))
    if options.get("epochs") is not None and options.get("steps") is None:
        overrides.append((("trainer", "steps"), None))
    if options.get("no_eval"):
        overrides += [(("eval", "every_epochs"), 0), (("eval", "every_steps"), 0), (("eval", "at_end"), False)]
    return overrides


def _resolve(registry: Any, preset: str, overrides: list, draw_seed: bool = True) -> dict[str, Any]:
    """A preset's or a config file's configuration, with overrides: what `run` trains and `config` prints."""
    from .config import CONFIG_SUFFIXES, is_config_file, resolve, resolve_file

    if Path(preset).is_file() and not is_config_file(preset):
        raise ConfigError(f"{preset}: a config file's name ends in {', '.join(CONFIG_SUFFIXES)}")
    if is_config_file(preset):
        return resolve_file(registry, Path(preset), overrides, draw_seed=draw_seed)
    return resolve(registry, preset=preset, overrides=overrides, draw_seed=draw_seed)


def _rerun_notes(path: Path, world_size: int, batch_size: int) -> list[str]:
    """What a rerun of a run's config.json cannot repeat: changes made when it was resumed, another world size."""
    from .config import load_config_file

    try:
        recorded = load_config_file(path)
    except AdvnetsError:
        return []
    notes = []
    length = ("trainer.steps", "trainer.epochs")  # how far a run goes: the rerun's own
    changes = [
        (c.get("step"), [k for k in c["set"] if k not in length])
        for c in recorded.get("changes") or [] if isinstance(c, dict) and isinstance(c.get("set"), dict)
    ]
    changes = [(step, keys) for step, keys in changes if keys]
    if changes:
        said = "; ".join(f"at step {step}: {', '.join(keys)}" for step, keys in changes)
        notes.append(
            f"{path} records {len(changes)} change(s) made when its run was resumed ({said}): this run trains "
            "with the last values from step 0, not the run's history"
        )
    ran = recorded.get("distributed")
    before = ran.get("world_size") if isinstance(ran, dict) else None
    if isinstance(before, int) and before != world_size:
        notes.append(
            f"{path}'s run trained with {before} processes (a global batch of {before} x batch_size); this run has "
            f"{world_size} (a global batch of {world_size * batch_size}): add --nproc {before} for the same"
        )
    return notes


def _run(preset, set_, options, out, resume, plugin, check_world_size: int | None = None) -> None:
    """Start or resume the run; with ``check_world_size``, only check it for a job of that many processes."""
    from . import distributed
    from .console import ProgressDisplay, summary_table
    from .runs import check_start, resume_run, start_run
    from .provenance import file_records

    source = resume if resume is not None else Path(preset) if preset is not None and Path(preset).is_file() else None
    plugins = _plugins(plugin, source)
    registry = plugins.registry
    main = distributed.is_main()  # under torchrun only rank 0 talks
    say = err_console.print if main else (lambda *args, **kwargs: None)
    display = ProgressDisplay(err_console)
    if resume is not None:
        if out is not None:
            raise ConfigError("--out cannot change a run being resumed: it stays in its folder")
        session = resume_run(
            registry,
            resume,
            preset=preset,
            overrides=_overrides(set_, options),
            plugin_files=file_records(plugins),
            extra_callbacks=[display],
            check_world_size=check_world_size,
        )
        if session is None:
            return
        for note in session.skipped:
            say(note)
        if session.resumed_from is not None:
            say(f"resuming {resume} from {session.resumed_from.name} (step {session.trainer.step})")
        for change in session.config["changes"][-1:]:
            if change["step"] == session.trainer.step:
                changes = ", ".join(f"{k} {json.dumps(change['was'][k])} -> {json.dumps(v)}" for k, v in change["set"].items())
                say(f"changed: {changes}", markup=False, highlight=False, soft_wrap=True)
    else:
        if preset is None:
            raise ConfigError("name a preset (advnets list components --kind preset) or a config file, or --resume a run")
        config = _resolve(registry, preset, _overrides(set_, options))
        config["plugin_files"] = file_records(plugins)
        if check_world_size is not None:
            check_start(registry, config, out, check_world_size)
            return
        if source is not None:
            for note in _rerun_notes(source, distributed.world_size(), config["trainer"]["batch_size"]):
                say(f"advnets: note: {note}", markup=False, highlight=False)
        session = start_run(registry, config, out, extra_callbacks=[display])
    trainer = session.trainer
    processes = f" x {trainer.world_size} processes" if trainer.world_size > 1 else ""
    say(
        f"[bold]{escape(str(session.config.get('preset') or 'run'))}[/] on {trainer.device}{processes}"
        f"{_cpu_threads(trainer.device)} -> {escape(str(session.run_dir))}",
        highlight=False,
    )
    with _StopOnSignal() as stopper:
        stopper.trainer = trainer
        try:
            session.fit()
        except KeyboardInterrupt:
            display.on_fit_end(trainer)
            if _has_checkpoint(session):
                say(f"interrupted at step {trainer.step}; resume from the last checkpoint with:")
            else:
                say(f"interrupted at step {trainer.step}, before the first checkpoint; this starts it again from step 0:")
            say(f"  advnets run --resume {session.run_dir}")
            raise typer.Exit(128 + stopper.last) from None
        except (WriteError, OSError) as exc:
            display.on_fit_end(trainer)
            if main:
                _error_line(f"{_failed_write(exc)}; training stopped at step {trainer.step}: {_keep_trained_steps(session)}")
            raise typer.Exit(1) from None
        except CaptureError as exc:  # between steps, the state whole: keep it, and say how to go on eagerly
            display.on_fit_end(trainer)
            if main:
                kept = _keep_trained_steps(session, " --set trainer.cuda_graphs=off")
                _error_line(f"{exc}; training stopped at step {trainer.step}: {kept}")
            raise typer.Exit(1) from None
        except (Exception, SystemExit) as exc:
            # a callback's hook or a metric failed between steps (in the closing evaluation, say):
            # the state is whole, so the steps trained since the last checkpoint are kept. Under
            # torchrun the other ranks are not stopped here (they wait in their next all-reduce):
            # the error propagates, and torchrun ends them, as before.
            if not (trainer.between_steps and trainer.step > 0 and trainer.world_size == 1):
                raise
            display.on_fit_end(trainer)
            if main:
                if isinstance(exc, AdvnetsError):
                    what = str(exc)
                elif isinstance(exc, SystemExit):
                    what = _plugin_exit_line(exc)
                else:
                    traceback.print_exception(exc)  # a bug in code: where it is
                    what = exception_line(exc)
                _error_line(f"{what}; training stopped at step {trainer.step}: {_keep_trained_steps(session)}")
            raise typer.Exit(2 if isinstance(exc, AdvnetsError) else 1) from None
    say(summary_table(trainer, display, session.run_dir, session.checkpointer.last_path))
    if trainer.fault is not None:
        if main:
            _error_line(f"{trainer.fault}; they are saved in {session.checkpointer.last_path}")
        raise typer.Exit(1)
    if stopper.signal is not None:
        say(f"stopped early; resume with:  advnets run --resume {session.run_dir}")
        raise typer.Exit(128 + stopper.signal)


def _has_checkpoint(session: Any) -> bool:
    """Whether the run folder holds a step checkpoint to resume from (this process's, or an earlier one's)."""
    from .checkpoint import step_checkpoints

    return session.checkpointer.last_path is not None or bool(step_checkpoints(session.run_dir / "checkpoints"))


def _failed_write(exc: OSError | WriteError) -> str:
    if isinstance(exc, WriteError):
        return str(exc)
    return f"{exc.filename or 'a file'}: cannot write ({exc.strerror or exc})"


def _keep_trained_steps(session: Any, resume_with: str = "") -> str:
    """After a failed write or capture: a final checkpoint if one can be written; where the trained steps are."""
    from .checkpoint import step_of

    trainer, checkpointer = session.trainer, session.checkpointer
    last = checkpointer.last_path or session.resumed_from
    resume = f"; resume with: advnets run --resume {session.run_dir}{resume_with}"
    if last is not None and step_of(last) == trainer.step:
        return f"its checkpoint is {last}{resume}"
    try:
        return f"saved in {checkpointer.save(trainer)}{resume}"
    except AdvnetsError:
        if last is None:
            return "no checkpoint could be written"
        return f"the final checkpoint could not be written either; the last good one is {last}{resume}"


# --- list / info ---------------------------------------------------------------------


@list_app.command("components", cls=_Command)
def list_components(
    kind: Annotated[Optional[str], typer.Option(help="Only this kind (generator, loss, preset, ...).")] = None,
    name: Annotated[Optional[str], typer.Option(help="Only names matching this glob, e.g. '*gan*'.")] = None,
    from_plugin: Annotated[Optional[str], typer.Option("--from", help="Only components of this plugin.")] = None,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print JSON for scripts.")] = False,
    plugin: PluginFiles = None,
) -> None:
    """List registered components: kind, name (and aliases), summary and the plugin each came from."""
    plugins = _plugins(plugin)
    registry = plugins.registry
    loaded = [info.name for info in plugins.infos]  # those with no components (or a load error) too
    if from_plugin is not None and from_plugin not in loaded:
        hint = f" ({registry.hint})" if registry.hint else ""
        raise ConfigError(f"no loaded plugin is called {from_plugin!r}{close_matches(from_plugin, loaded)}; plugins: {', '.join(loaded)}{hint}")
    components = registry.components(kind=kind, plugin=from_plugin, pattern=name)
    if as_json:
        print(json.dumps([_component_json(c) for c in components], indent=2))
        return
    table = Table(title=f"{len(components)} components")
    for column in ("kind", "name", "summary", "plugin"):
        table.add_column(column, overflow="fold")
    for c in components:
        aliases = f" (alias {', '.join(c.aliases)})" if c.aliases else ""
        table.add_row(c.kind, c.name + aliases, escape(c.summary), c.plugin or "")
    out_console.print(table)


def _component_json(c: Any) -> dict[str, Any]:
    return {
        "kind": c.kind,
        "name": c.name,
        "aliases": list(c.aliases),
        "summary": c.summary,
        "plugin": c.plugin,
        "defaults": c.defaults,
        "nested": dict(c.nested),
    }


@list_app.command("plugins", cls=_Command)
def list_plugins(
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print JSON for scripts.")] = False,
    plugin: PluginFiles = None,
) -> None:
    """List loaded plugins: name, version, where each came from, and load errors."""
    infos = _plugins(plugin).infos
    if as_json:
        print(json.dumps([info.as_json() for info in infos], indent=2))
        return
    table = Table(title=f"{len(infos)} plugins")
    for column in ("name", "version", "source", "location", "components", "error"):
        table.add_column(column, overflow="fold")
    for info in infos:
        table.add_row(
            info.name,
            info.version or "",
            info.source,
            escape(info.location),
            str(info.components),
            f"[red]{escape(info.error)}[/]" if info.error else "",
        )
    out_console.print(table)


@app.command(cls=_Command)
def info(
    kind: Annotated[str, typer.Argument(help="The component's kind.")],
    name: Annotated[str, typer.Argument(help="The component's name.")],
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print JSON for scripts.")] = False,
    plugin: PluginFiles = None,
) -> None:
    """Show one component: summary, settings with their defaults and types, plugin, and an example."""
    from .config import SLOTS
    from .registry import type_name

    component = _plugins(plugin).registry.get(kind, name)
    if as_json:
        print(json.dumps(_component_json(component), indent=2))
        return
    if name != component.name:
        out_console.print(f"{kind} {name} is an alias of {component.name}", markup=False)
    out_console.print(f"[bold]{kind} {component.name}[/]  (plugin {escape(str(component.plugin))})")
    if component.aliases:
        out_console.print(f"aliases: {', '.join(component.aliases)}", markup=False)
    out_console.print(escape(component.summary))
    defaults = component.defaults or {}
    if defaults:
        table = Table("setting", "default", "type")
        for key, value in defaults.items():
            if key in component.nested:
                kind_of = f"a {component.nested[key]} config"
                shown = "none: choose one" if value is None else json.dumps(value)
                table.add_row(key, escape(shown), kind_of)
            else:
                table.add_row(key, escape(json.dumps(value)), type_name(value) if value is not None else "any")
        out_console.print(table)
    if kind == "preset":
        out_console.print(f"example: advnets run {component.name} --epochs 1", markup=False)
    else:
        slot = {"optimizer": "g_optimizer", "metric": "eval.metrics", "callback": "callbacks"}.get(
            kind, kind if kind in SLOTS else None
        )
        if slot in ("eval.metrics", "callbacks"):
            out_console.print(f"example: --set '{slot}.{name}={{}}'", markup=False)
        elif slot is not None:
            first = next(iter(defaults), None)
            if first in component.nested:  # a component inside: name one, then set one of its settings
                inner = component.nested[first]
                extra = f" --set {slot}.{first}=NAME --set {slot}.{first}.SETTING=VALUE  (NAME: advnets list components --kind {inner})"
            else:
                extra = f" --set {slot}.{first}={json.dumps(defaults[first])}" if first else ""
            out_console.print(f"example: --set {slot}={name}{extra}", markup=False)


# --- config ----------------------------------------------------------------------------


@app.command("config", cls=_Command)
def config_(
    preset: Annotated[str, typer.Argument(help="A preset, or a config file (.json, .yaml, .yml, .toml).")],
    set_: Sets = None,
    plugin: PluginFiles = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check", metavar="",
            help="Also build the run as `advnets run` would (its data, networks, optimizers and callbacks' checks), "
            "so that values out of range are errors too; nothing is trained or written.",
        ),
    ] = False,
) -> None:
    """Print the configuration `advnets run` would train, resolved, as JSON: names and types checked; --check builds it."""
    source = Path(preset) if Path(preset).is_file() else None
    registry = _plugins(plugin, source).registry
    config = _resolve(registry, preset, _overrides(set_, {}), draw_seed=False)
    if check:
        from .runs import check_config

        check_config(registry, config)
    print(json.dumps(config, indent=2))


# --- sample ----------------------------------------------------------------------------


@app.command(cls=_Command)
def sample(
    source: Annotated[Path, typer.Argument(help="A run folder (its newest checkpoint) or a checkpoint file.")],
    n: Annotated[
        Optional[int],
        typer.Option("--n", help="How many samples (default 64), or paths with --interpolate (default 10)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="A .png (grid, or histogram for 1-D data) or .safetensors file.")] = Path("samples.png"),
    force: Annotated[bool, typer.Option("--force", metavar="", help="Overwrite --out if it exists.")] = False,
    seed: Annotated[Optional[int], typer.Option(help="Noise seed (default: a fresh one).")] = None,
    raw: Annotated[bool, typer.Option("--raw", metavar="", help="Use G's last weights, not their moving average.")] = False,
    nrow: Annotated[
        int,
        typer.Option(help="Images per grid row; pairs per row with --nearest; points per path with --interpolate."),
    ] = 8,
    nearest: Annotated[
        bool,
        typer.Option(
            "--nearest",
            metavar="",
            help="The paper's Figure 2: each sample beside its nearest training image (Euclidean, in pixels).",
        ),
    ] = False,
    interpolate: Annotated[
        bool,
        typer.Option(
            "--interpolate",
            metavar="",
            help="The paper's Figure 3: --n rows of G along straight lines in z, --nrow points each "
            "(ends included), between pairs of draws of the noise with --seed; a conditional run keeps one "
            "class along each row (row r: class r mod the class count, or --label).",
        ),
    ] = False,
    data_dir: Annotated[
        Optional[Path], typer.Option(help="With --nearest: the folder with the dataset's files (default: the run's).")
    ] = None,
    label: Annotated[
        Optional[int],
        typer.Option(help="A conditional run: draw this class only (default: row r shows class r mod the class count)."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    threads: Threads = None,
    plugin: PluginFiles = None,
) -> None:
    """Draw samples from a trained generator, or the paper's Figure 2 (--nearest) or Figure 3 (--interpolate)."""
    _use_threads(threads)
    from .config import check_seed
    from .runs import load_generator
    from .trainer import resolve_device

    if nearest and interpolate:
        raise ConfigError("--nearest and --interpolate draw different figures; give one of them")
    n = n if n is not None else 10 if interpolate else 64
    if n < 1 or nrow < 1:
        raise ConfigError(f"--n and --nrow must be >= 1, got {n} and {nrow}")
    check_seed("--seed", seed)  # the range a run's seed has
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; give --force to overwrite it")
    registry = _plugins(plugin, source).registry
    loaded = load_generator(registry, source, use_average=not raw)
    for note in loaded.skipped:  # a damaged newer checkpoint: say which one was passed over
        err_console.print(f"advnets: {note}", markup=False, highlight=False)
    dev = resolve_device(device)
    generator = loaded.generator.to(dev)
    data_info = loaded.metadata.get("data", {})
    if not (nearest or interpolate):
        from .samples import check_sample_out

        check_sample_out(out, data_info, n)
    # A conditional G: --interpolate keeps one class along each path of nrow points (row r: class r mod the count).
    labels = _sample_labels(generator, label, n * nrow if interpolate else n, nrow)
    which = "the moving average of G" if loaded.averaged else "G"
    if interpolate:
        _sample_interpolation(generator, loaded.noise, data_info, n, nrow, seed, out, dev, labels)
        classes = "" if labels is None else ", one class each"
        err_console.print(f"{n} paths of {nrow} points in z{classes} through {which} in {loaded.path} -> {out}")
    elif nearest:
        folder = None if data_dir is None else str(data_dir)
        searched = _sample_nearest(registry, loaded, generator, data_info, n, nrow, seed, out, folder, dev, labels)
        err_console.print(f"{n} samples of {which} in {loaded.path}, each beside its nearest of {searched} training images -> {out}")
    else:
        from .samples import write_samples
        from .trainer import generate

        samples = generate(generator, n, noise=loaded.noise, seed=seed, device=dev, labels=labels)
        write_samples(samples, data_info, out, nrow=nrow)
        err_console.print(f"{n} samples of {which} in {loaded.path} -> {out}")


def _sample_interpolation(generator, noise, data_info, paths, points, seed, out, dev, labels=None) -> None:
    from .callbacks import save_grid
    from .samples import check_image_figure, images_of, interpolation_noise

    check_image_figure(data_info, out, "--interpolate")
    z = interpolation_noise(generator, paths, points, noise, seed, dev)
    save_grid(images_of(generator, z, None if labels is None else labels.to(dev)), data_info["model_range"], out, nrow=points)


def _sample_nearest(registry, loaded, generator, data_info, n, pairs_per_row, seed, out, data_dir, dev, labels=None) -> int:
    """Figure 2 into ``out``; returns how many training images were searched."""
    from .evaluation import run_dataset
    from .samples import check_image_figure, nearest_training_images, save_nearest_pairs
    from .trainer import generate

    check_image_figure(data_info, out, "--nearest")
    data = run_dataset(registry, loaded.metadata["config"], data_dir)
    samples = generate(generator, n, noise=loaded.noise, seed=seed, device=dev, labels=labels)
    index = nearest_training_images(samples, data)
    save_nearest_pairs(samples, data.decode(data.train_samples(index)), data_info["model_range"], out, pairs_per_row)
    return len(data.train)


def _sample_labels(generator: Any, label: int | None, n: int, nrow: int) -> Any:
    """The classes to draw: ``label`` for all n, else one class per grid row; None for an unconditional G."""
    import torch

    from .players import is_conditional, row_labels

    if not is_conditional(generator):
        if label is not None:
            raise ConfigError("--label needs a conditional run; this run's generator has no classes")
        return None
    if label is None:
        return row_labels(n, nrow, generator.num_classes)
    if not 0 <= label < generator.num_classes:
        raise ConfigError(f"--label {label} is not a class of this run's generator (0 to {generator.num_classes - 1})")
    return torch.full((n,), label, dtype=torch.int64)


# --- eval ------------------------------------------------------------------------------


@app.command("eval", cls=_Command)
def eval_(
    source: Annotated[
        Optional[Path], typer.Argument(help="A run folder (its newest checkpoint) or a checkpoint file.")
    ] = None,
    metric: Annotated[
        Optional[list[str]], typer.Option("--metric", metavar="NAME", help="A metric to run (repeatable); default: the run's eval.metrics.")
    ] = None,
    real: Annotated[
        Optional[str], typer.Option(help="Score a preset's real training images instead: the reference row.")
    ] = None,
    n: Annotated[int, typer.Option("--n", help="Samples (or real images) to score.")] = 10000,
    seed: Annotated[int, typer.Option(help="Noise seed for G's samples.")] = 0,
    raw: Annotated[bool, typer.Option("--raw", metavar="", help="Use G's last weights, not their moving average.")] = False,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder with the dataset's files.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print JSON for scripts.")] = False,
    threads: Threads = None,
    plugin: PluginFiles = None,
) -> None:
    """Score a trained generator with metric components; writes eval.json into the run folder."""
    _use_threads(threads)
    from .evaluation import eval_file_for, evaluate_generator, evaluate_real, save_evaluation
    from .config import check_seed

    if (source is None) == (real is None):
        raise ConfigError("give a run folder or checkpoint, or --real PRESET (not both)")
    check_seed("--seed", seed)  # the range a run's seed has
    registry = _plugins(plugin, source).registry
    folder = None if data_dir is None else str(data_dir)
    if real is not None:
        evaluation = evaluate_real(registry, real, metrics=metric, n=n, data_dir=folder)
    else:
        evaluation = evaluate_generator(
            registry, source, metrics=metric, n=n, seed=seed, use_average=not raw, data_dir=folder, device=device
        )
    for note in evaluation.notes:
        err_console.print(f"advnets: {note}", markup=False, highlight=False)
    if as_json:
        from .files import to_json

        print(to_json(evaluation.as_json(), indent=2))
    else:
        table = Table(title=f"{evaluation.source}: " + ", ".join(f"{k} {v}" for k, v in evaluation.info.items()))
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in evaluation.results.items():
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
        out_console.print(table)
    # written after it is shown: a run folder that cannot take eval.json (read-only) loses no numbers
    target = None if source is None else eval_file_for(source)
    if target is not None:
        save_evaluation(evaluation, target)
        if not as_json:
            err_console.print(f"wrote {target}")


# --- plot --------------------------------------------------------------------------------


@app.command(cls=_Command)
def plot(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    plugin: PluginFiles = None,
) -> None:
    """Draw a run's pictures: training.png (losses, D(x), D(G(z)), evaluations) and samples.gif."""
    from .config import load_config_file
    from .files import no_run_folder
    from .plots import damaged_note, evaluations_of, plot_run, read_metrics
    from .registry import settings_of

    if not run_dir.is_dir():
        raise ConfigError(no_run_folder(run_dir, "plot"))
    records, damaged = read_metrics(run_dir)
    if damaged:
        err_console.print(damaged_note(run_dir, damaged), markup=False)
    equilibrium = None
    if (run_dir / "config.json").is_file():
        config = load_config_file(run_dir / "config.json")
        loss = config.get("loss") or {}
        settings = settings_of(loss)
        registry = _plugins(plugin, run_dir).registry
        if ("loss", loss.get("name")) in registry:
            equilibrium = registry.build("loss", loss["name"], **settings).equilibrium
        if not evaluations_of(records):  # a run from before metrics declared their numbers: ask them now
            described = _declared_by_factories(registry, config)
            if described:
                records = [{"event": "evaluations", "step": 0, "evaluations": described}, *records]
    notes: list[str] = []
    for path in plot_run(run_dir, equilibrium, records, notes=notes):
        out_console.print(f"wrote {path}")
    for note in notes:
        err_console.print(note, markup=False)


def _declared_by_factories(registry: Any, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What the installed metrics a run's config names declare of their numbers, read from their
    classes (nothing is built); ``{}`` where none is installed or declares anything."""
    from .metrics import declared

    metrics = (config.get("eval") or {}).get("metrics") or {}
    found: dict[str, dict[str, Any]] = {}
    for name in metrics if isinstance(metrics, dict) else []:
        if ("metric", name) in registry:
            try:
                found.update(declared(name, registry.get("metric", name).load()).as_json())
            except AdvnetsError:  # a factory that cannot be imported or declares badly: plot without it
                continue
    return found


# --- compare -----------------------------------------------------------------------------


@app.command(cls=_Command)
def compare(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN", help="Two or more run folders.", show_default=False)],
    out: Annotated[Path, typer.Option(help="The plot of the runs' curves overlaid, one colour per run (.png).")] = Path("compare.png"),
    force: Annotated[bool, typer.Option("--force", metavar="", help="Overwrite --out if it exists.")] = False,
    no_plot: Annotated[bool, typer.Option("--no-plot", metavar="", help="Print the comparison only; write no plot.")] = False,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print JSON for scripts.")] = False,
) -> None:
    """Compare runs: preset, steps, final losses, evaluations at the end and at their best, and one plot of their curves.

    Best: each metric declares which way its numbers are better, and the best value is given for every number with a direction (for the number a run keeps best.safetensors by, eval.best, its eval.mode where it sets one); a number without one shows its lowest and highest value with their steps. The metrics' headline numbers come first. The plot overlays the losses and the evaluations that all the runs have.
    """
    from .compare import compare_runs, comparison_table, plot_comparison
    from .plots import damaged_note

    comparison = compare_runs(runs)
    if not no_plot:
        if out.suffix.lower() != ".png":
            raise ConfigError(f"{out}: the plot is a PNG file; give --out a name ending in .png")
        if out.exists() and not force:
            raise ConfigError(f"{out} already exists; give --force to overwrite it")
    for run in comparison.runs:
        if run.damaged:
            err_console.print(damaged_note(run.path, run.damaged), markup=False)
    if not no_plot:
        plot_comparison(comparison, out)
    if as_json:
        from .files import to_json

        print(to_json({**comparison.as_json(), "plot": None if no_plot else str(out)}, indent=2))
    else:
        out_console.print(comparison_table(comparison))
    if not no_plot:
        err_console.print(f"wrote {out}", markup=False)


# --- entry point -----------------------------------------------------------------------


def main() -> None:
    """Console-script entry point."""
    app(prog_name="advnets")
