"""Data sources, the annotation-table contract, image IO and per-image set transforms."""
