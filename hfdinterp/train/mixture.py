"""Several training sources as one dataset: item i comes from source (i mod n), deterministically.

Items keep only the keys every stage reads, so sources with extras (the synthetic generator's
``clean`` frames) batch together with sources without them.
"""

from __future__ import annotations

from torch.utils.data import Dataset

TRAINING_KEYS = ("image0", "image_t", "image1", "flow", "time")


class Mixture(Dataset):
    def __init__(self, sources: list[Dataset]):
        if not sources:
            raise ValueError("no training data: give --photos, --footage or --vimeo")
        self.sources = sources

    def __len__(self) -> int:
        return min(len(s) for s in self.sources) * len(self.sources)

    def __getitem__(self, index: int):
        source = self.sources[index % len(self.sources)]
        item = source[(index // len(self.sources)) % len(source)]
        return {key: item[key] for key in TRAINING_KEYS}
