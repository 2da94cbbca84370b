"""The activation-store layout (a public contract, ``docs/formats.md`` § Activation store):
dataset and attribute names, and how source attributes and extra datasets are encoded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hsae.errors import BadInput

ACTIVATIONS = "activations"
IMAGE_INDEX = "image_index"
EMBEDDINGS = "embeddings"
IMAGE_IDS = "image_ids"
STORE_DTYPES = ("float16", "float32")

RESERVED_ATTR_PREFIX = "hsae_store_"
FORMAT_ATTR = "hsae_store_format"
JSON_ATTRS_ATTR = "hsae_store_json_attrs"
FORMAT_VERSION = 1

_INT64 = np.iinfo(np.int64)


def parts_folder(store_path: Path) -> Path:
    """The side folder ``<store>.parts/`` that holds a store while it is being written."""
    return store_path.with_name(store_path.name + ".parts")


def check_attrs(attrs: dict, where: str) -> dict[str, Any]:
    """A copy of ``attrs`` after checking that keys are strings outside the reserved
    ``hsae_store_`` prefix and values are JSON-able."""
    checked = {}
    for key, value in attrs.items():
        if not isinstance(key, str) or key.startswith(RESERVED_ATTR_PREFIX):
            raise BadInput(f"{where}: attribute name {key!r} must be a string not starting "
                           f"with {RESERVED_ATTR_PREFIX!r}")
        try:
            json.dumps(value)
        except (TypeError, ValueError) as error:
            raise BadInput(f"{where}: attribute {key!r} is not JSON-able ({error})") from None
        checked[key] = value
    return checked


def _is_native(value: Any) -> bool:
    """Whether HDF5 stores ``value`` as a plain scalar attribute that reads back equal."""
    if isinstance(value, (str, float)):
        return True
    return isinstance(value, int) and _INT64.min <= value <= _INT64.max  # bool is an int


def write_attrs(target: h5py.HLObject, attrs: dict[str, Any]) -> None:
    """Write ``attrs`` on a file, group or dataset: strings, booleans, integers and floats as
    plain HDF5 attributes, anything else (lists, dicts, None) as JSON text whose names are
    listed in the ``hsae_store_json_attrs`` attribute."""
    json_names = []
    for key, value in attrs.items():
        if _is_native(value):
            target.attrs[key] = value
        else:
            target.attrs[key] = json.dumps(value)
            json_names.append(key)
    if json_names:
        target.attrs[JSON_ATTRS_ATTR] = json.dumps(json_names)


def _plain(value: Any) -> Any:
    """An HDF5 attribute value as plain Python (str, int, float, bool or lists of them)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        return [_plain(item) for item in value.tolist()]
    if isinstance(value, np.generic):
        return _plain(value.item())
    return value


def read_attrs(source: h5py.HLObject, where: str) -> dict[str, Any]:
    """The attributes of a file, group or dataset, without the ``hsae_store_`` ones, with
    JSON-encoded values decoded (the inverse of :func:`write_attrs`)."""
    try:
        json_names = set(json.loads(source.attrs.get(JSON_ATTRS_ATTR, "[]")))
        return {
            key: json.loads(value) if key in json_names else _plain(value)
            for key, value in source.attrs.items()
            if not key.startswith(RESERVED_ATTR_PREFIX)
        }
    except (TypeError, ValueError) as error:
        raise BadInput(f"{where}: attribute {JSON_ATTRS_ATTR!r} or an attribute it names is not "
                       f"valid JSON ({error})") from None


def as_numpy(array: Any) -> np.ndarray:
    """``array`` (numpy, a torch tensor on any device, or a nested list) as a numpy array.
    Floating tensors come back as float32 (numpy has no bfloat16)."""
    if hasattr(array, "detach"):  # a torch.Tensor, recognised without importing torch
        tensor = array.detach().cpu()
        return (tensor.float() if tensor.is_floating_point() else tensor).numpy()
    return np.asarray(array)


def check_extra_name(name: str, where: str) -> str:
    """Check the HDF5 path of an extra dataset (``embeddings``, ``truth/leaf_dirs``, …)."""
    parts = name.split("/") if isinstance(name, str) else []
    if not parts or any(part in ("", ".", "..") for part in parts):
        raise BadInput(f"{where}: {name!r} is not a dataset path like 'embeddings' or "
                       f"'truth/leaf_dirs'")
    if name in (ACTIVATIONS, IMAGE_INDEX):
        raise BadInput(f"{where}: dataset {name!r} is written by append(), not put()")
    return name


def extra_array(name: str, array: Any, where: str) -> np.ndarray:
    """An extra dataset's data in a form HDF5 stores: numbers as they are, strings as UTF-8.
    ``embeddings`` must be a 2-D float array and ``image_ids`` a 1-D array of strings."""
    data = as_numpy(array)
    if data.dtype.kind in "USO":
        if not all(isinstance(item, str) for item in data.flat):
            raise BadInput(f"{where}: dataset {name!r} mixes strings with other objects")
        data = np.array(data.tolist(), dtype=h5py.string_dtype("utf-8"))
    elif data.dtype.kind not in "biuf":
        raise BadInput(f"{where}: dataset {name!r} has dtype {data.dtype}; expected numbers or "
                       f"strings")
    if name == EMBEDDINGS and (data.ndim != 2 or data.dtype.kind != "f"):
        raise BadInput(f"{where}: dataset {name!r} must be a 2-D float array (n_images, D), "
                       f"got shape {data.shape} and dtype {data.dtype}")
    if name == IMAGE_IDS and (data.ndim != 1 or h5py.check_string_dtype(data.dtype) is None):
        raise BadInput(f"{where}: dataset {name!r} must be a 1-D array of strings, got shape "
                       f"{data.shape} and dtype {data.dtype}")
    return data
