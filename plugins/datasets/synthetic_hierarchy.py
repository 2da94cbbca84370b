"""The ``synthetic_hierarchy`` dataset: a planted concept hierarchy written as an activation store."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hsae.errors import BadInput
from hsae.interfaces.dataset import ActivationSource, Progress
from hsae.store.truth import write_truth
from hsae.store import ActivationStore, StoreWriter
from hsae_plugins.datasets.planted import HierarchyConfig, activations, build_tree, embeddings, n_blocks, sample_block

DATASET = "synthetic_hierarchy"


class SyntheticHierarchy(ActivationSource):
    """Planted concept hierarchy with known ground truth (activations, embeddings, truth/)."""

    Config = HierarchyConfig

    def store_attrs(self) -> dict:
        """The store's attributes: the dataset's name and the generator options."""
        return {"dataset": DATASET, "generator": self.config.model_dump(mode="json")}

    def write_store(self, path: Path, progress: Progress | None = None) -> None:
        """Write the store at ``path`` (layout: ``docs/synthetic.md``), continuing an
        interrupted write from its committed rows; the result does not depend on where it
        was interrupted. A finished store there is kept if it holds the same options."""
        config: HierarchyConfig = self.config
        attrs = self.store_attrs()
        with StoreWriter(path, width=config.width, attrs=attrs, with_image_index=True) as writer:
            if writer.finished:
                self._check_finished(Path(path), attrs)
                return
            tree = build_tree(config)
            done = writer.rows_done
            sample_embeddings = []
            for index in range(n_blocks(config)):
                block = sample_block(config, tree, index)
                sample_embeddings.append(embeddings(config, tree, block))
                end = block.start + len(block.leaves)
                if end <= done:
                    continue
                skip = max(done - block.start, 0)
                writer.append(
                    activations(config, tree, block)[skip:],
                    image_index=np.arange(block.start + skip, end, dtype=np.int64),
                )
                writer.commit()
                if progress is not None:
                    progress(end, config.n_samples)
            writer.put("embeddings", np.concatenate(sample_embeddings))
            write_truth(writer, tree.truth)

    @staticmethod
    def _check_finished(path: Path, attrs: dict) -> None:
        with ActivationStore(path) as store:
            found = {key: store.attrs.get(key) for key in attrs}
        if found != attrs:
            raise BadInput(
                f"{path}: a finished store written with other options is already there "
                f"(attributes 'dataset'/'generator' are {found}); delete it or choose another path"
            )
