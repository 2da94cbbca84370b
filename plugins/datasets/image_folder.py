"""``image_folder``: the images under a directory, labelled by their class sub-folder."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from hsae.interfaces.plugin import PluginConfig
from hsae_plugins.datasets.image_files import ImageFile, ImageFileDataset, list_class_folders, pillow_extensions


class ImageFolderConfig(PluginConfig):
    root: Path = Field(description="directory holding one sub-folder per class (images directly in it have no label)")


class ImageFolder(ImageFileDataset):
    """Images in class sub-folders of a directory (any format Pillow reads; unreadable files skipped).

    Order: the unlabelled images directly in ``root`` by name, then each class folder by
    name with its images (searched recursively) by path. The image id is the path relative
    to ``root``.
    """

    Config = ImageFolderConfig

    def list_files(self) -> list[ImageFile]:
        root = self.config.root
        classes = list_class_folders(root, "image_folder root")
        extensions = pillow_extensions()
        loose = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in extensions and not p.name.startswith("."))
        files = [ImageFile(p.name, p, None) for p in loose]
        for label, paths in classes.items():
            files += [ImageFile(p.relative_to(root).as_posix(), p, label) for p in paths]
        return files
