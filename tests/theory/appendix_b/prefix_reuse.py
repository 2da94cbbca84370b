"""How often a Matryoshka decoder direction is reused by the nested prefixes (paper, Lemma B.6).

Prefix sizes ``m_1 < m_2 < … < m_K`` are positive integers; prefix ``k`` holds the decoder
directions at positions ``1..m_k`` (1-based, as in the paper). The reuse count of position ``j``
is ``r(j) = #{k : j <= m_k}``. If ``m_{t−1} < j <= m_t`` (with ``m_0 = 0``) the direction first
appears in prefix ``t`` and ``r(j) = K − t + 1``; hence ``j <= j'`` implies ``r(j) >= r(j')``.
"""

from __future__ import annotations

import numpy as np

from hsae.errors import BadInput


def validate_prefix_sizes(prefix_sizes) -> np.ndarray:
    """The prefix sizes as an int64 array, checked to be positive integers in strictly increasing order."""
    sizes = np.asarray(prefix_sizes)
    if sizes.ndim != 1 or sizes.size == 0:
        raise BadInput(f"prefix sizes: expected a non-empty 1-D sequence m_1 < … < m_K, got shape {sizes.shape}")
    if not np.issubdtype(sizes.dtype, np.integer):
        raise BadInput(f"prefix sizes: expected integers, got dtype {sizes.dtype}")
    sizes = sizes.astype(np.int64)
    if sizes[0] < 1 or np.any(np.diff(sizes) <= 0):
        raise BadInput(f"prefix sizes: expected positive and strictly increasing values, got {sizes.tolist()}")
    return sizes


def first_containing_prefix(prefix_sizes, positions) -> np.ndarray:
    """The 1-based index ``t`` with ``m_{t−1} < j <= m_t`` for each position ``j`` (1-based, ``1 <= j <= m_K``)."""
    sizes = validate_prefix_sizes(prefix_sizes)
    position_array = np.asarray(positions)
    if not np.issubdtype(position_array.dtype, np.integer):
        raise BadInput(f"positions: expected integers, got dtype {position_array.dtype}")
    if np.any(position_array < 1) or np.any(position_array > sizes[-1]):
        raise BadInput(f"positions must lie in 1..m_K = 1..{int(sizes[-1])}, got {position_array.tolist()}")
    return np.searchsorted(sizes, position_array, side="left") + 1


def prefix_reuse_counts(prefix_sizes, positions) -> np.ndarray:
    """Vectorised Lemma B.6: ``r(j) = K − t(j) + 1`` for every entry ``j`` of ``positions``."""
    sizes = validate_prefix_sizes(prefix_sizes)
    return sizes.size - first_containing_prefix(sizes, positions) + 1


def prefix_reuse_count(prefix_sizes, position: int) -> int:
    """Lemma B.6 for one position ``j`` (1-based): the number of prefixes containing direction ``j``."""
    return int(prefix_reuse_counts(prefix_sizes, np.asarray(position)))
