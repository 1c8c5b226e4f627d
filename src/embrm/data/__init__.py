"""The canonical arrays: checks at stage boundaries, the synthetic source, the release
importer, and where each data folder lives."""
