"""Kept for ``from hfdinterp.images import read_image, write_image``, the Python API README showed
until 0.6; the module is ``hfdinterp.io.images``."""

from .io.images import Image, read_image, write_image

__all__ = ["Image", "read_image", "write_image"]
