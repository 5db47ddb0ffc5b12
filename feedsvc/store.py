"""Holds the current Catalog and swaps in a new one as a whole (pure core, no Flask)."""

from __future__ import annotations

import logging
from pathlib import Path

from .catalog import Catalog
from .loader import load_folder

log = logging.getLogger(__name__)


class FeedStore:
    """The catalog of one seeds folder; readers take `.catalog` once per request."""

    def __init__(self, seeds_dir: Path | str) -> None:
        self.seeds_dir = Path(seeds_dir)
        self.catalog = self.load()

    def load(self) -> Catalog:
        """Load the folder into a new Catalog and log a summary."""
        result = load_folder(self.seeds_dir)
        catalog = Catalog(result.articles, result.problems)
        log.info(
            "loaded %d articles from %s (%d skipped)", len(catalog.articles), self.seeds_dir, len(catalog.skipped)
        )
        return catalog

    def reload(self) -> Catalog:
        """Replace the catalog in one assignment, so a request sees the old one or the new."""
        self.catalog = self.load()
        return self.catalog
