"""The plugin registry: lookup errors, option validation, broken plugins and a third-party encoder
installed through a real entry-point declaration (a dist-info folder on sys.path)."""

from __future__ import annotations

import math
import sys
import textwrap

import pytest
import torch

from hsae import registry
from hsae.errors import PluginError

FIRST_PARTY_ENCODERS = {"relu", "topk", "batchtopk", "jumprelu", "gated"}

SOFT_SHRINK_MODULE = '''
"""A third party's encoder: ReLU with a constant shrinkage."""
import torch
from pydantic import BaseModel, ConfigDict, Field

from hsae.interfaces.encoder import Encoder, Encoding
from hsae.interfaces.plugin import PluginConfig


class Shrink(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    amount: float = Field(0.05, ge=0)


class SoftShrinkConfig(PluginConfig):
    shrink: Shrink = Shrink()


class SoftShrinkEncoder(Encoder):
    """Soft-shrink SAE: z = ReLU(p - t), S(z) = sum_j z_j ||W_dec[:, j]||."""

    Config = SoftShrinkConfig

    def encode(self, proj, b_enc, dec_norm):
        z = torch.relu(proj + b_enc - self.config.shrink.amount)
        return Encoding(z, z @ dec_norm)
'''


@pytest.fixture
def install_distribution(tmp_path, monkeypatch):
    """Write ``<module>.py`` and ``<module>-<version>.dist-info`` declaring ``entry_points`` under
    ``[hsae.encoders]`` into a folder put first on sys.path; forget the module afterwards."""
    installed = []

    def install(module: str, version: str, source: str, entry_points: dict[str, str]) -> None:
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"{module}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: {version}\n")
        lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[hsae.encoders]\n{lines}")
        installed.append(module)

    monkeypatch.syspath_prepend(str(tmp_path))
    yield install
    for module in installed:
        sys.modules.pop(module, None)


def test_first_party_encoders_are_exactly_the_five_from_hsae():
    rows = [row for row in registry.catalogue() if row.group == "hsae.encoders"]
    assert {row.name for row in rows} == FIRST_PARTY_ENCODERS
    assert set(registry.names("hsae.encoders")) == FIRST_PARTY_ENCODERS
    for row in rows:
        assert row.error is None
        assert row.distribution.split()[0] == "hsae"
        assert row.description


def test_unknown_name_lists_the_available_names():
    with pytest.raises(PluginError) as err:
        registry.load("hsae.encoders", "topkk")
    message = str(err.value)
    assert "'topkk'" in message
    for name in FIRST_PARTY_ENCODERS:
        assert name in message


def test_unknown_group_lists_the_groups():
    with pytest.raises(PluginError) as err:
        registry.names("hsae.encoder")
    for group in registry.GROUPS:
        assert group in str(err.value)


def test_spec_without_name_is_rejected():
    with pytest.raises(PluginError, match="'name'"):
        registry.create("hsae.encoders", {"k": 3}, n_inputs=4, n_latents=8)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"name": "topk", "k": "many"}, "k"),  # ill-typed
        ({"name": "topk", "k": 0}, "k"),  # out of range
        ({"name": "batchtopk", "kay": 2}, "kay"),  # unknown
        ({"name": "relu", "k": 2}, "k"),  # an option relu does not have
    ],
)
def test_bad_option_names_plugin_and_field(spec, field):
    with pytest.raises(PluginError) as err:
        registry.create("hsae.encoders", spec, n_inputs=4, n_latents=8)
    message = str(err.value)
    assert f"plugin {spec['name']!r}" in message
    assert f" {field}: " in message


def test_bad_option_in_a_cascade_level_names_plugin_and_field(build_cascade):
    with pytest.raises(PluginError, match=r"'jumprelu'.* bandwidth: "):
        build_cascade(4, [{"n_latents": 8, "encoder": {"name": "jumprelu", "bandwidth": -1.0}}])


def test_third_party_encoder_trains_in_a_cascade(install_distribution, build_cascade, planted_hierarchy, train):
    install_distribution("thirdparty_enc", "0.1", SOFT_SHRINK_MODULE,
                         {"softshrink": "thirdparty_enc:SoftShrinkEncoder"})
    row = next(r for r in registry.catalogue() if r.name == "softshrink")
    assert (row.group, row.distribution, row.error) == ("hsae.encoders", "thirdparty_enc 0.1", None)
    assert row.description.startswith("Soft-shrink SAE")

    cascade = build_cascade(16, [
        {"n_latents": 32, "encoder": {"name": "softshrink", "shrink": {"amount": 0.02}}, "sparsity_coef": 1e-3},
        {"n_latents": 6, "encoder": {"name": "softshrink"}, "sparsity_coef": 1e-3},
    ])
    assert cascade.level(1).encoder.config.shrink.amount == 0.02
    losses = train(cascade, planted_hierarchy(512), steps=60)
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) < 0.7 * sum(losses[:5])


def test_third_party_nested_option_error_gives_the_field_path(install_distribution):
    install_distribution("thirdparty_enc", "0.1", SOFT_SHRINK_MODULE,
                         {"softshrink": "thirdparty_enc:SoftShrinkEncoder"})
    with pytest.raises(PluginError, match=r"plugin 'softshrink'.* shrink\.amount: .*'lots'"):
        registry.create("hsae.encoders", {"name": "softshrink", "shrink": {"amount": "lots"}},
                        n_inputs=4, n_latents=8)


def test_broken_plugin_is_reported_and_others_still_listed(install_distribution):
    install_distribution("broken_enc", "0.2", 'raise RuntimeError("needs a GPU driver")\n',
                         {"broken": "broken_enc:BrokenEncoder"})
    rows = {row.name: row for row in registry.catalogue() if row.group == "hsae.encoders"}
    assert set(rows) == FIRST_PARTY_ENCODERS | {"broken"}
    broken = rows.pop("broken")
    assert broken.distribution == "broken_enc 0.2"
    for part in ("'broken'", "broken_enc 0.2", "RuntimeError: needs a GPU driver"):
        assert part in broken.error
    assert all(row.error is None for row in rows.values())

    with pytest.raises(PluginError) as err:
        registry.load("hsae.encoders", "broken")
    assert isinstance(err.value.__cause__, RuntimeError)
    assert registry.load("hsae.encoders", "topk").__name__ == "TopKEncoder"


def test_entry_point_to_a_non_plugin_is_rejected(install_distribution):
    install_distribution("not_a_plugin", "1.0", "class Thing:\n    pass\n", {"thing": "not_a_plugin:Thing"})
    with pytest.raises(PluginError, match="'thing'.*not a subclass"):
        registry.load("hsae.encoders", "thing")


def test_a_name_declared_by_two_distributions_is_an_error_naming_both(install_distribution):
    install_distribution("first_enc", "1.0", SOFT_SHRINK_MODULE, {"shrinky": "first_enc:SoftShrinkEncoder"})
    install_distribution("second_enc", "2.0", SOFT_SHRINK_MODULE, {"shrinky": "second_enc:SoftShrinkEncoder"})
    with pytest.raises(PluginError) as err:
        registry.load("hsae.encoders", "shrinky")
    for part in ("'shrinky'", "first_enc 1.0", "second_enc 2.0", "first_enc:SoftShrinkEncoder"):
        assert part in str(err.value)
    row = next(r for r in registry.catalogue() if r.name == "shrinky")
    assert "first_enc 1.0" in row.distribution and "second_enc 2.0" in row.distribution and row.error
    assert registry.load("hsae.encoders", "topk").__name__ == "TopKEncoder"  # the other names still load


def test_a_plugin_written_for_another_contract_version_is_refused(install_distribution):
    source = SOFT_SHRINK_MODULE + "\n\nclass Future(SoftShrinkEncoder):\n    contract = 99\n"
    install_distribution("future_enc", "0.3", source, {"future": "future_enc:Future", "current": "future_enc:SoftShrinkEncoder"})
    with pytest.raises(PluginError, match=r"'future'.*future_enc 0\.3.*version 99 of the hsae.encoders contract.*version 1"):
        registry.load("hsae.encoders", "future")
    assert registry.load("hsae.encoders", "current").__name__ == "SoftShrinkEncoder"  # no version stated: current


def test_register_makes_a_class_available_in_this_process(build_cascade):
    from hsae.interfaces.encoder import Encoder, Encoding

    class Halved(Encoder):
        """ReLU of half the pre-activation (a notebook experiment)."""

        def encode(self, proj, b_enc, dec_norm):
            z = torch.relu(proj + b_enc) / 2
            return Encoding(z, z @ dec_norm)

    assert registry.register("hsae.encoders", "halved", Halved) is Halved
    try:
        assert "halved" in registry.names("hsae.encoders")
        row = next(r for r in registry.catalogue() if r.name == "halved")
        assert (row.distribution, row.description) == (registry.REGISTERED, "ReLU of half the pre-activation (a notebook experiment).")
        cascade = build_cascade(4, [{"n_latents": 8, "encoder": {"name": "halved"}}])
        assert isinstance(cascade.level(1).encoder, Halved)
        with pytest.raises(PluginError, match="'halved'.*already declared: registered in this process"):
            registry.register("hsae.encoders", "halved", Halved)
    finally:
        registry.unregister("hsae.encoders", "halved")
    assert "halved" not in registry.names("hsae.encoders")
    with pytest.raises(PluginError, match="'topk'.*already declared: hsae"):
        registry.register("hsae.encoders", "topk", Halved)
    with pytest.raises(PluginError, match="not a subclass"):
        registry.register("hsae.encoders", "thing", object)
    with pytest.raises(PluginError, match="unknown plugin group"):
        registry.register("hsae.encoder", "halved", Halved)


@pytest.mark.parametrize("group", ["hsae.judges", "hsae.labellers", "hsae.methods"])
def test_every_group_is_known_and_versioned(group):
    assert isinstance(registry.names(group), list)
    assert registry.GROUPS[group] >= 1
