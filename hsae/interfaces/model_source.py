"""Where a plugin's ``model`` option points: a local folder, or a Hugging Face hub id.

A value is a local folder when it exists as one, starts with ``/``, ``.`` or ``~``, is not of
the hub's ``namespace/name`` form, or its first part is a folder that exists here
(``models/tiny`` with ``models/`` present). A local folder that does not exist is refused at
once (:func:`check_model_source`), never looked up on the hub. A hub id is left to
``from_pretrained``, except that with ``HF_HUB_OFFLINE`` set it must already be in the local
cache.
"""

from __future__ import annotations

import os
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


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def model_source_problem(value: str) -> str | None:
    """Why ``value`` cannot be loaded, or None: a missing or non-folder local path, or a hub
    id absent from the cache while offline."""
    if is_local(value):
        path = Path(value).expanduser()
        if not path.exists():
            return (f"model folder {value!r} does not exist (a local path is never looked up on the hub); "
                    "build or download the model there, or give a hub id such as 'namespace/name'")
        if not path.is_dir():
            return f"model {value!r} is a file; give the folder that holds config.json"
        return None
    if _offline():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(value, "config.json"), str):
            return (f"model {value!r} is not a local folder and not in the Hugging Face cache, and HF_HUB_OFFLINE "
                    "is set; download it first, or give a local folder")
    return None
