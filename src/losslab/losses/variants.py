"""Candidates of a comparison: a registered loss, or a loss at its own setting, ``LOSS[key=value,...]``.

A comparison ranks *candidates*. A candidate is a registered loss name
(``ebgan``: the loss at its defaults and the comparison's config) or a
*variant*, the loss with settings of its own written after it in brackets:

    ebgan[pt_weight=0]
    ebgan[pt_variant=global_l1]
    ns[lr=0.0002,n_critic=2]
    ebgan[model.arch=infogan]

A key without a section is a ``loss.*`` field (``lr`` sets ``loss.lr_g`` and
``loss.lr_d`` alike, as ``--search`` does); ``model.*``, ``diffusion.*`` and
``contrastive.*`` keys are allowed too. ``train.*`` and ``data.*`` keys are
refused: every candidate of a comparison trains on the same data with the same
budget. The label is the candidate's name everywhere a loss's name appears:
its run directories (``runs/ebgan[pt_weight=0]/seed0``), the race, the tables
and the answer; each run's config.json records the setting it trained with.

Racing settings as candidates is what irace does with configurations
(Lopez-Ibanez et al. 2016, Operations Research Perspectives 3:43-58, Sec. 3):
``--search N`` races each loss's best settings of the search this way
(:func:`losslab.search.elites`).
"""

from __future__ import annotations

import math
import re
from typing import Any

from losslab.errors import UserError

__all__ = ["VARIANT_SECTIONS", "base_name", "is_variant", "label", "parse", "split_list"]

VARIANT_SECTIONS = ("loss", "model", "diffusion", "contrastive")
"""Config sections a variant may set; ``train`` and ``data`` are the comparison's (equal budget, same data)."""

_LABEL = re.compile(r"^\s*([^\[\]\s,]+)\s*(?:\[(.*)\])?\s*$", re.S)


def split_list(text: str) -> list[str]:
    """``--losses`` text split at the commas outside brackets: ``"ns,ns[lr=1e-4,n_critic=2]"`` -> 2 items.

    Raises:
        UserError: unbalanced brackets.
    """
    items, depth, cur = [], 0, []
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise UserError(f"--losses {text!r}: a ']' without its '['")
        if ch == "," and depth == 0:
            items.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise UserError(f"--losses {text!r}: a '[' without its ']'")
    items.append("".join(cur))
    return [s.strip() for s in items if s.strip()]


def parse(name: str) -> tuple[str, dict[str, str]]:
    """``(base loss, {"section.key": value text})`` of a candidate label; ``({name}, {})`` for a plain name.

    ``lr`` expands to ``loss.lr_g`` and ``loss.lr_d``. Values stay text: the
    config coerces them to each field's type (:func:`losslab.compare.with_overrides`).

    Raises:
        UserError: a malformed label (no ``key=value`` inside the brackets, an
            empty bracket, a repeated key) or a ``train.*`` / ``data.*`` key.
    """
    m = _LABEL.match(str(name))
    if m is None:
        raise UserError(f"malformed loss {name!r}; expected LOSS or LOSS[key=value,...], e.g. ebgan[pt_weight=0]")
    base, inner = m.group(1), m.group(2)
    if inner is None:
        return base, {}
    out: dict[str, str] = {}
    items = [s.strip() for s in inner.split(",")]
    if not any(items):
        raise UserError(f"loss {name!r}: empty brackets; give key=value settings, e.g. {base}[pt_weight=0]")
    for item in items:
        if "=" not in item or not item.split("=", 1)[0].strip() or not item.split("=", 1)[1].strip():
            raise UserError(f"loss {name!r}: {item!r} is not key=value (e.g. {base}[pt_weight=0])")
        key, value = (s.strip() for s in item.split("=", 1))
        section = key.split(".", 1)[0] if "." in key else "loss"
        if section in ("train", "data"):
            raise UserError(f"loss {name!r}: {key} is the comparison's, the same for every loss (equal budget, "
                            "same data); set it with --set or --steps")
        if section not in VARIANT_SECTIONS:
            raise UserError(f"loss {name!r}: unknown section {section!r}; a variant sets "
                            f"{', '.join(s + '.*' for s in VARIANT_SECTIONS)} keys")
        keys = ["loss.lr_g", "loss.lr_d"] if key == "lr" else [key if "." in key else f"loss.{key}"]
        for k in keys:
            if k in out:
                raise UserError(f"loss {name!r}: {k} is set twice")
            out[k] = value
    return base, out


def base_name(name: str) -> str:
    """The registered loss of a candidate label (``ebgan[pt_weight=0]`` -> ``ebgan``); a plain name as is."""
    m = _LABEL.match(str(name))
    return m.group(1) if m is not None else str(name)


def is_variant(name: str) -> bool:
    """Whether ``name`` carries settings of its own (``LOSS[...]``)."""
    return "[" in str(name)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"a variant's value must be finite, got {value}")
        return f"{value:.4g}"
    return str(value)


def label(base: str, params: dict[str, Any]) -> str:
    """The candidate label of ``base`` at ``params`` (``--search`` keys: ``lr``, ``gamma``, ``loss.*``):
    ``base`` for no params, else ``base[k=v,...]`` in sorted key order, floats to 4 significant digits
    (the setting the candidate trains with: its config.json records the value read back from the label)."""
    if not params:
        return base
    return f"{base}[{','.join(f'{k}={_text(v)}' for k, v in sorted(params.items()))}]"
