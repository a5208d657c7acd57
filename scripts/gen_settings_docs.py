"""Write docs/settings.md, the reference of every core setting, from advnets/config.py itself.

    python scripts/gen_settings_docs.py          # rewrite docs/settings.md
    python scripts/gen_settings_docs.py --check  # exit 1 if docs/settings.md is out of date (the tests do this)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from advnets.config import CORE, MAPS, PLAYER_FIELDS, SLOT_DEFAULTS, SLOTS, Setting
from advnets.plugins import load_plugins

TARGET = Path(__file__).resolve().parents[1] / "docs" / "settings.md"

INTRO = """\
# Settings reference

Generated from `advnets/config.py` by `python scripts/gen_settings_docs.py`; a test keeps it current.

A run's configuration starts from the core defaults below; a preset lays its own
values over them; a config file (`advnets run FILE`) or `--set KEY=VALUE` (in the
order given) change them further. `advnets config PRESET --set ...` prints the
result, and every run writes it to `config.json`. Each value is checked against
the type of its default; a wrong one stops the run before it starts, with one
line on stderr and exit code 2. Ranges (k >= 1, a positive learning rate) are
checked when the run is built: `advnets config PRESET --check` builds it as
`advnets run` would, without training or writing anything.
"""

SLOTS_TEXT = """\
## Components

A component slot holds `{"name": ..., settings...}`. `--set loss=hinge` picks
another component (with that component's defaults); `--set loss.margin=2` changes
one of its settings. `advnets info KIND NAME` lists a component's settings.
"""

MAPS_TEXT = """\
## Component maps

A component map holds `{name: {settings}}` for several components of one kind.
`--set 'callbacks.sample-grid={}'` adds one with its defaults, `--set
callbacks.sample-grid=null` removes it, `--set callbacks.sample-grid.n=16` changes
a setting. The `jsonl` logger is always on (`advnets plot` and the training plots
read `metrics.jsonl`); `--set logger=NAME` (or `advnets run --logger NAME`) adds
another.
"""

LOGGERS_TEXT = """\
## Loggers

`jsonl` is always on; `advnets run --logger NAME` (repeatable) or `--set logger=NAME`
adds another, and `--set loggers.NAME.SETTING=VALUE` changes one of its settings.

The `mlflow` logger (`pip install -e '.[mlflow]'`) records the numbers of each
record as metrics named `EVENT/KEY` (`train/d_loss`, `eval/w1`) at their step,
the run's configuration, flattened, as parameters (`trainer.k`, `loss.name`), and
`config.json`, the sample grids (`samples/step_*.png`) and the final checkpoint
(`checkpoints/`, unless `log_checkpoint` is false) as artifacts. With
`tracking_uri` null it keeps a store of the run's own in `RUN_DIR/mlflow`
(SQLite in `mlflow.db`, artifacts in `artifacts/`): no server, and it works
offline. Any MLflow tracking URI (`http://host:5000`, `sqlite:///path/mlflow.db`)
sends the run there instead; `experiment` names the MLflow experiment.
`RUN_DIR/mlflow.json` keeps the MLflow run's id, and `advnets run --resume` goes
on in that MLflow run: the steps after the checkpoint are logged again, as in
`metrics.jsonl`, and a setting that changed (a longer `trainer.steps`) keeps its
first value as a parameter, since MLflow never changes one; `config.json` is
logged again.
"""


PLAYERS_TEXT = """\
## Players

Beside the generator and the discriminator, an objective may train more players
(an encoder, say). `players` holds `{{name: {{fields}}}}`, each player with the
fields {fields}: `module` is a component of the kind named like the player,
`optimizer` an optimizer component (default `adam`), and `ema_decay`,
`ema_start`, `ema_warmup` its moving average (default off; as the trainer's settings of those names). `--set 'players.encoder={{"module":
{{"name": "mlp"}}}}'` adds one, `--set players.encoder=null` removes it, and
`--set players.encoder.module.SETTING=VALUE` changes one setting of its module
(more dots reach into a nested component, as for the generator). Default: none.
"""


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _type(spec: Setting) -> str:
    name = {"str": "string"}.get(spec.type.__name__, spec.type.__name__)
    return f"{name} or null" if spec.default is None else name


def _section(title: str, prefix: str, node: dict[str, Any]) -> list[str]:
    lines = [f"## {title}", "", "| setting | default | type | what it does |", "| --- | --- | --- | --- |"]
    for key, spec in node.items():
        if isinstance(spec, Setting):
            lines.append(f"| `{prefix}{key}` | `{json.dumps(spec.default)}` | {_type(spec)} | {_cell(spec.doc)} |")
    return [*lines, ""]


def render() -> str:
    lines = [INTRO]
    top = {key: spec for key, spec in CORE.items() if isinstance(spec, Setting)}
    lines += _section("Run", "", top)
    for key, node in CORE.items():
        if isinstance(node, dict):
            lines += _section(f"`{key}`", f"{key}.", node)
    lines += [SLOTS_TEXT, "| slot | holds a | default |", "| --- | --- | --- |"]
    for slot, kind in SLOTS.items():
        default = f"`{SLOT_DEFAULTS[slot]}`" if slot in SLOT_DEFAULTS else "none: the preset chooses"
        lines.append(f"| `{slot}` | {kind} | {default} |")
    lines += ["", MAPS_TEXT, "| map | holds | default |", "| --- | --- | --- |"]
    for path, kind in MAPS.items():
        default = "`jsonl`" if path == ("loggers",) else "none"
        lines.append(f"| `{'.'.join(path)}` | {kind}s | {default} |")
    lines += ["", LOGGERS_TEXT, "| logger | setting | default | what it writes |", "| --- | --- | --- | --- |"]
    for component in load_plugins(environ={}).registry.components(kind="logger", plugin="advnets"):
        settings = component.defaults or {"": None}
        for n, (key, value) in enumerate(settings.items()):
            what = _cell(component.summary) if n == 0 else ""
            name = f"**{component.name}**" if n == 0 else ""  # not `name`: rows that start so are core settings
            lines.append(f"| {name} | {f'`{key}`' if key else ''} | {f'`{json.dumps(value)}`' if key else ''} | {what} |")
    lines += ["", PLAYERS_TEXT.format(fields=", ".join(f"`{f}`" for f in sorted(PLAYER_FIELDS)))]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if TARGET.read_text() == text else 1)
    TARGET.write_text(text)
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
