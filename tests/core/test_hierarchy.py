"""Parent assignment π_l and the exported hierarchy (spec §4)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hsae.cascade.hierarchy import NO_PARENT, assign_parents, children_of, hierarchy_dict, parents_from_codes

FAST = settings(max_examples=30, deadline=None)
WIDTHS = (12, 5, 3)


@FAST
@given(rows=st.integers(1, 8), cols=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_parent_is_the_first_argmax_or_none_for_an_all_zero_code(rows, cols, seed):
    g = torch.Generator().manual_seed(seed)
    codes = torch.relu(torch.randint(-2, 3, (rows, cols), generator=g).float())  # many ties and zero rows
    parents = parents_from_codes(codes)
    for code, parent in zip(codes.tolist(), parents.tolist()):
        expected = NO_PARENT if max(code) == 0 else code.index(max(code))
        assert parent == expected


@FAST
@given(data=st.data())
def test_exported_children_and_parents_agree(data):
    widths = data.draw(st.lists(st.integers(1, 6), min_size=2, max_size=4))
    parents = [np.array(data.draw(st.lists(st.integers(NO_PARENT, n - 1), min_size=below, max_size=below)))
               for below, n in zip(widths, widths[1:])]
    exported = hierarchy_dict(parents, widths)
    assert exported["widths"] == widths
    for level, pi, n in zip(exported["levels"], parents, widths[1:]):
        assert level["parent"] == pi.tolist() and level["n_latents"] == n
        listed = sorted(i for kids in level["children"].values() for i in kids)
        assert listed == sorted(i for i, k in enumerate(pi) if k != NO_PARENT)
        for k, kids in level["children"].items():
            assert kids and all(pi[i] == int(k) for i in kids)
        assert level["orphans"] == len(pi) - len(listed)
        assert children_of(pi, n) == [level["children"].get(str(k), []) for k in range(n)]


def random_cascade(build_cascade, seed: int):
    torch.manual_seed(seed)
    cascade = build_cascade(6, [{"n_latents": n, "encoder": {"name": "relu"}} for n in WIDTHS])
    with torch.no_grad():
        for sae in cascade.levels.values():
            sae.b_enc.normal_(0, 0.3)
            sae.b_dec.normal_(0, 0.3)
    return cascade


@torch.no_grad()
def permute_latents(cascade, level: int, perm: list[int]) -> None:
    """New latent k of ``level`` is old latent perm[k]."""
    sae = cascade.level(level)
    sae.W_enc.copy_(sae.W_enc[perm])
    sae.b_enc.copy_(sae.b_enc[perm])
    sae.W_dec.copy_(sae.W_dec[:, perm])


def relabel(parents: np.ndarray, perm: list[int]) -> np.ndarray:
    """Parents named by the new position of each old latent."""
    new_index = np.argsort(perm)
    return np.where(parents == NO_PARENT, NO_PARENT, new_index[parents])


@FAST
@given(perm=st.permutations(range(WIDTHS[1])), seed=st.integers(0, 10_000))
def test_permuting_a_levels_latents_relabels_and_permutes_parents(build_cascade, perm, seed):
    cascade = random_cascade(build_cascade, seed)
    pi2, pi3 = assign_parents(cascade)
    assume(len(set(pi2.tolist()) - {NO_PARENT}) >= 2 and len(set(pi3.tolist()) - {NO_PARENT}) >= 2)
    permute_latents(cascade, 2, perm)
    new_pi2, new_pi3 = assign_parents(cascade)
    assert np.array_equal(new_pi2, relabel(pi2, perm))  # level-2 latents are π₂'s values
    assert np.array_equal(new_pi3, pi3[perm])  # and the atoms π₃ assigns


@FAST
@given(perm=st.permutations(range(WIDTHS[0])), seed=st.integers(0, 10_000))
def test_permuting_level_one_atoms_permutes_their_parents(build_cascade, perm, seed):
    cascade = random_cascade(build_cascade, seed)
    pi2, pi3 = assign_parents(cascade)
    assume(len(set(pi2.tolist()) - {NO_PARENT}) >= 2 and len(set(pi3.tolist()) - {NO_PARENT}) >= 2)
    permute_latents(cascade, 1, perm)
    new_pi2, new_pi3 = assign_parents(cascade)
    assert np.array_equal(new_pi2, pi2[perm])
    assert np.array_equal(new_pi3, pi3)


def test_assign_parents_runs_in_eval_mode_and_restores_training(build_cascade):
    cascade = build_cascade(6, [{"n_latents": 8, "encoder": {"name": "batchtopk", "k": 1}},
                                {"n_latents": 3, "encoder": {"name": "batchtopk", "k": 1}}])
    cascade.level(2).encoder.threshold.fill_(1e6)  # at inference nothing passes this threshold
    cascade.train()
    (pi2,) = assign_parents(cascade)
    assert (pi2 == NO_PARENT).all()
    assert cascade.training and cascade.level(2).encoder.training
