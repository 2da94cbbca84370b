"""Where a plugin's ``model`` option points: a local folder, or a Hugging Face hub id.

A value is a local folder when it exists as one, starts with ``/``, ``.`` or ``~``, is not of
the hub's ``namespace/name`` form, or its first part is a folder that exists here
(``models/tiny`` with ``models/`` present). A local folder that does not exist is refused at
once (:func:`model_source_problem`), never looked up on the hub. A hub id is left to
``from_pretrained`` (offline, ``HF_HUB_OFFLINE=1``, it fails at once when the id is not cached).
"""

from __future__ import annotations

import re
from pathlib import Path

_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")


def is_local(value: str) -> bool:
    """Whether ``value`` names a local folder rather than a hub id (module docstring)."""
    path = Path(value).expanduser()
    if path.exists() or value.startswith(("/", ".", "~")) or "\\" in value:
        return True
    if not _HUB_ID.match(value) or ".." in value or "--" in value:
        return True
    return "/" in value and Path(value.split("/", 1)[0]).is_dir()


def model_source_problem(value: str) -> str | None:
    """Why ``value`` cannot name a model, or None: a local path that does not exist or is a file."""
    if not is_local(value):
        return None
    path = Path(value).expanduser()
    if not path.exists():
        return (f"model folder {value!r} does not exist (a local path is never looked up on the hub); "
                "build or download the model there, or give a hub id such as 'namespace/name'")
    if not path.is_dir():
        return f"model {value!r} is a file; give the folder that holds config.json"
    return None
