"""What notebooks need to lay out a rule's evidence and name its rows: the pre-training setting of the network a
unit reads (the independent unit of the correlation rules) and a backbone in words.

Kept out of :mod:`ncutils.book.networks`, which the unit kinds run: nothing here changes a number a unit computes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ncutils.book.engine.units import Unit, canonical
from ncutils.book.networks import architecture, form, source_of

__all__ = ["describe", "setting_of", "source_model_row"]


def describe(spec: Mapping[str, Any]) -> str:
    """A backbone spec in words, for a page (Markdown)."""
    f, arch = form(spec), architecture(spec)
    name = arch if isinstance(arch, str) else arch["arch"]
    if f == "public":
        return f"public weights `{name}`"
    if f == "random":
        return f"`{name}` with random weights"
    return f"`{name}` pre-trained here ({source_of(spec).config['epochs']} epochs)"


def setting_of(unit: Unit, label: Any) -> str:
    """The pre-training setting of the network a probe, few-shot or score unit reads: its source model's
    configuration without the seed, so that models which differ only by their seed share it (the independent
    unit of the correlation rules); a public network (no source model) is its own setting, ``str(label)``."""
    src = source_of(unit.config.get("backbone"))
    if src is None:
        return str(label)
    return json.dumps({k: v for k, v in canonical(src.config).items() if k != "seed"}, sort_keys=True, default=str)


def source_model_row(u: Unit, result: Mapping[str, Any]) -> dict[str, Any]:
    """One source model (a ``pretrain`` unit and its result) as a row of a chapter's source-model table: its setting,
    the epochs it trained (the schedule's and those the recipe's training-accuracy target added), its source NC1
    and ``train_accuracy`` (the terminal-phase check)."""
    c = u.config
    net = c["network"]
    return {"network": net.get("arch", "?") + (f"-w{net['width']}" if "width" in net else ""),
            "data": c["data"]["source"], "classes": c["num_classes"], "loss": c["loss"],
            "head layers": c["head_layers"], "level": c["level"],
            "adv. ε (/255)": None if c["adv_eps"] is None else round(c["adv_eps"] * 255, 3),
            "epochs": c["epochs"] + int(result.get("extra_epochs") or 0), "lr": c["lr"], "seed": c["seed"],
            "source NC1": result["source_nc1"], "train_accuracy": result["train_accuracy"], "key": u.key}
