"""The activation store: the HDF5 file every stage reads and writes (``docs/formats.md``)."""

from hsae.store.reader import ActivationStore
from hsae.store.writer import StoreWriter

__all__ = ["ActivationStore", "StoreWriter"]
