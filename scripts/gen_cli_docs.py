"""Write docs/cli.md, the command-line reference, from the typer app itself.

    python scripts/gen_cli_docs.py          # rewrite docs/cli.md
    python scripts/gen_cli_docs.py --check  # exit 1 if docs/cli.md is out of date (the tests do this)
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from advnets.cli import app

TARGET = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def _argument_name(param) -> str:
    """An argument as usage lines show it: its metavar or name, with ... when it takes one or more values."""
    return (param.metavar or param.name).upper() + ("..." if param.nargs == -1 else "")


def _param_row(param) -> str:
    names = ", ".join(f"`{n}`" for n in (param.opts + param.secondary_opts)) if param.param_type_name == "option" else f"`{_argument_name(param)}`"
    kind = "flag" if getattr(param, "is_flag", False) else param.bare_type().lower()
    if getattr(param, "multiple", False):
        kind = kind.removeprefix("list[").removesuffix("]") + ", repeatable"  # the type of one value
    elif param.nargs == -1:
        kind = kind.removeprefix("list[").removesuffix("]") + ", one or more"
    default = param.default
    unset = default is None or default is False or default == () or callable(default)  # not `in`: 0 == False
    shown = "" if unset else f"`{default}`"
    return f"| {names} | {_cell(kind)} | {shown} | {_cell(getattr(param, 'help', '') or '')} |"


def _command(path: list[str], command) -> list[str]:
    lines = [f"## `{' '.join(path)}`", ""]
    if command.help:
        lines += [command.help.strip(), ""]
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    usage = " ".join(path) + " [OPTIONS]" + "".join(f" {'' if p.required else '['}{_argument_name(p)}{'' if p.required else ']'}" for p in arguments)
    lines += ["```", usage, "```", ""]
    params = [p for p in command.params if p.name not in ("help",)]
    if params:
        lines += ["| argument or option | type | default | what it does |", "| --- | --- | --- | --- |"]
        lines += [_param_row(p) for p in params]
        lines.append("")
    return lines


def _walk(path: list[str], command) -> list[str]:
    if hasattr(command, "commands"):
        lines = []
        for name, sub in command.commands.items():
            lines += _walk([*path, name], sub)
        return lines
    return _command(path, command)


def render() -> str:
    root = typer.main.get_command(app)
    header = [
        "# Command line reference",
        "",
        "Generated from the typer app by `python scripts/gen_cli_docs.py`; a test keeps it current.",
        "Every command exits with 2 and one line on stderr for bad input; `-h` is short for `--help` everywhere.",
        "",
    ]
    return "\n".join(header + _walk(["advnets"], root)).rstrip() + "\n"


def main() -> None:
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if TARGET.read_text() == text else 1)
    TARGET.write_text(text)
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
