"""Checks of the files a spec names, made at load so the error points at the line that names them."""

from __future__ import annotations

from typing import Optional


def image_problem(path: str) -> tuple[Optional[str], tuple[int, int]]:
    """(why the image file at ``path`` cannot be used or None, its (width, height) in pixels or (0, 0))."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # PIL only warns between its pixel limit and twice that; either way the image
            # would take gigabytes once decoded, so both are refused here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                size = img.size
                img.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        return (
            f"the image {path} is too large to decode safely ({err}); use one of at most "
            f"{Image.MAX_IMAGE_PIXELS:,} pixels (4096 x 4096 is plenty for a texture)"
        ), (0, 0)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        return f"cannot read the image {path} ({err}); use a PNG or JPEG file", (0, 0)
    return None, size
