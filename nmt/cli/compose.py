"""Composing a simple command line without Hydra or OmegaConf: start-up time for one-shot tools.

Importing Hydra and OmegaConf and composing with them cost about 0.35 s, more than the rest of a
one-line translation after ``import torch``. A command line of plain ``key=value`` overrides on a
config whose defaults list is a schema, ``_self_`` and single-file groups (``search: beam``) needs
none of their machinery: the result is the schema's defaults, merged with the file's own keys, the
chosen group files and the overrides, in that order, which is what Hydra computes; ``nmt.structured``
turns it into the job dataclass. ``compose_simple`` returns None for anything else (a group file
with defaults of its own, ``+key``, ``~key``, sweeps, quoted or structured values, a value that
does not fit, a missing mandatory value), and the caller composes with Hydra then, which also gives
Hydra's own error messages. ``tests/unit/test_structured.py`` checks both give the same job.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from nmt.config import SCHEMAS, conf_dir
from nmt.structured import Missing, Unsupported, build, defaults, merge, set_dotted

OVERRIDE = re.compile(r"^([A-Za-z_][\w.]*)=([\w./+\-,:%]*)$")  # values YAML reads as plain scalars


def compose_simple(config_name: str, overrides: list[str]) -> Any | None:
    """The job dataclass of ``nmt-<config_name> overrides...``, or None: compose with Hydra."""
    conf = conf_dir()
    try:
        primary = yaml.safe_load((conf / f"{config_name}.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    schema, order, groups = None, [], {}
    for entry in primary.pop("defaults", []):
        if entry == "_self_":
            order.append(None)
        elif isinstance(entry, str) and entry in SCHEMAS:
            schema = SCHEMAS[entry]
        elif isinstance(entry, dict) and len(entry) == 1:
            ((group, option),) = entry.items()
            if group.startswith("override hydra/"):
                continue
            if not re.fullmatch(r"\w+", group) or not isinstance(option, str):
                return None
            order.append(group)
            groups[group] = option
        else:
            return None
    primary.pop("hydra", None)
    dotlist = []
    for o in overrides:
        m = OVERRIDE.match(o)
        if m is None:
            return None
        key, value = m.groups()
        if key in groups:
            if not re.fullmatch(r"\w+", value):
                return None
            groups[key] = value
        else:
            dotlist.append((key, value))
    if schema is None:
        return None
    try:
        tree = defaults(schema)
        for item in order:
            if item is None:
                tree = merge(tree, primary)
                continue
            path = conf / item / f"{groups[item]}.yaml"
            text = path.read_text(encoding="utf-8")
            node = yaml.safe_load(text) or {}
            if not isinstance(node, dict) or "defaults" in node or "@package" in text:
                return None
            tree = merge(tree, {item: node})
        for key, value in dotlist:
            tree = set_dotted(tree, key, value)
        return build(schema, tree)
    except (OSError, yaml.YAMLError, Unsupported, Missing):
        return None
