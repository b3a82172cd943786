"""Settings of the Cycles beauty back end (``hybrid render --renderer cycles``, recipes' ``beauty:``)."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from hybrid.spec.types import Float, Int, Spec


class CyclesOptions(Spec):
    """How Cycles path-traces each beauty frame.

    Reproducibility: with the same options, bpy version and machine, a frame's pixels
    are the same bytes run to run (Cycles seeds every pixel's samples from `seed`, the
    pixel and the sample index, so the thread count does not change them; adaptive
    sampling is off). The OIDN denoiser is deterministic on the CPU for a fixed
    `threads`; on a GPU neither is promised.
    """

    samples: Annotated[Int, Field(ge=1, le=65536)] = Field(64, description="paths per pixel")
    denoise: bool = Field(True, description="OpenImageDenoise on the path-traced frame (not on the exact buffers)")
    denoise_quality: Literal["high", "balanced", "fast"] = Field(
        "balanced",
        description="OIDN quality; balanced (with a fast prefilter of the albedo and normal guides) costs "
        "about a third of high's time for 1.5 dB less at 64 samples (BENCHMARKS.md)",
    )
    device: Literal["cpu", "cuda", "optix"] = "cpu"
    seed: Annotated[Int, Field(ge=0, lt=2**31)] = Field(0, description="Cycles' sampling seed")
    threads: Annotated[Int, Field(ge=0, le=1024)] = Field(
        0, description="CPU render threads; 0 = one per core. Fix it for byte-identical denoised frames"
    )
    max_bounces: Annotated[Int, Field(ge=0, le=1024)] = Field(12, description="light path length")
    volume_bounces: Annotated[Int, Field(ge=0, le=1024)] = Field(
        4, description="scattering events a path may have inside smoke (0: single scattering only)"
    )
    filter_width: Annotated[Float, Field(ge=0.01, le=10.0)] = Field(
        1.5, description="pixel filter width in pixels (Blackman-Harris); antialiasing of the beauty frame"
    )


class RasterBeauty(Spec):
    """``beauty: {type: raster}`` in a recipe: the rasteriser draws rgb (the default)."""

    type: Literal["raster"]


class CyclesBeauty(CyclesOptions):
    """``beauty: {type: cycles, samples: 64, ...}`` in a recipe: Cycles draws rgb; the raster beauty stays as rgb_raster."""

    type: Literal["cycles"]

    def options(self) -> dict:
        return self.model_dump(exclude={"type"})


BeautySpec = Annotated[Union[RasterBeauty, CyclesBeauty], Field(discriminator="type")]


def beauty_spec(value: object) -> object:
    """A recipe's ``beauty: raster`` / ``beauty: cycles`` shorthand -> ``{type: ...}`` with default settings."""
    return {"type": value} if isinstance(value, str) else value
