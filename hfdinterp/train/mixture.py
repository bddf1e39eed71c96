"""Several training sources as one dataset: item i comes from source (i mod n), deterministically."""

from __future__ import annotations

from torch.utils.data import Dataset


class Mixture(Dataset):
    def __init__(self, sources: list[Dataset]):
        if not sources:
            raise ValueError("no training data: give --photos, --footage or --vimeo")
        self.sources = sources

    def __len__(self) -> int:
        return min(len(s) for s in self.sources) * len(self.sources)

    def __getitem__(self, index: int):
        source = self.sources[index % len(self.sources)]
        return source[(index // len(self.sources)) % len(source)]
