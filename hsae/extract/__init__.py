"""The extraction stage (a recipe's ``extract:`` section).

``run_extraction`` writes an activation store from an extractor plugin and an image dataset
plugin (``docs/extraction.md``); ``check_extract_config`` validates the section without
running it.
"""

from hsae.extract.config import ExtractConfig, check_extract_config
from hsae.extract.stage import ExtractionSummary, run_extraction

__all__ = ["ExtractConfig", "ExtractionSummary", "check_extract_config", "run_extraction"]
