"""Composing a simple command line without loading Hydra: start-up time for one-shot tools.

Importing Hydra and composing with it costs about 0.35 s, more than the rest of a one-line
translation after ``import torch``. A command line of plain ``key=value`` overrides on a config
whose defaults list is a schema, ``_self_`` and single-file groups (``search: beam``) needs none of
Hydra's machinery: the result is the schema, merged with the file's own keys, the chosen group
files and the overrides, in that order, which is what Hydra computes. ``compose_simple`` returns
None for anything else (a group file with defaults of its own, ``+key``, ``~key``, sweeps, quoted
or structured values, a value that does not fit), and the caller composes with Hydra then, which
also gives Hydra's own error messages. ``tests/unit/test_cli_compose.py`` checks both agree.
"""

from __future__ import annotations

import re

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nmt.config import SCHEMAS, conf_dir

OVERRIDE = re.compile(r"^([A-Za-z_][\w.]*)=([\w./+\-,:%]*)$")  # values YAML reads as plain scalars


def compose_simple(config_name: str, overrides: list[str]) -> DictConfig | None:
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
            dotlist.append(o)
    if schema is None:
        return None
    try:
        cfg = OmegaConf.structured(schema)
        for item in order:
            if item is None:
                cfg = OmegaConf.merge(cfg, primary)
                continue
            path = conf / item / f"{groups[item]}.yaml"
            text = path.read_text(encoding="utf-8")
            node = yaml.safe_load(text) or {}
            if "defaults" in node or "@package" in text:
                return None
            cfg = OmegaConf.merge(cfg, {item: node})
        return OmegaConf.merge(cfg, OmegaConf.from_dotlist(dotlist))
    except (OSError, yaml.YAMLError, OmegaConfBaseException):
        return None
