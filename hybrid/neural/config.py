"""NeuralConfig: everything that fixes a neural renderer's architecture and noise schedule.

Saved as a checkpoint's ``config.json`` next to its weights (``hybrid.neural.checkpoint``),
so a checkpoint folder rebuilds its model with no other input. The config is frozen:
a model is built from one and never changes shape afterwards.
"""

from __future__ import annotations

import difflib
import json
from typing import Annotated, Any, Literal, Mapping, Optional, Union

from pydantic import Field, ValidationError, field_validator, model_validator

from hybrid.spec.errors import Issue, SpecError
from hybrid.spec.types import Spec

FORMAT = "hybrid-neural/1"


class NeuralConfigError(SpecError, ValueError):
    """A config that cannot build a model: one issue per problem, each naming the field and what would work."""


# Fields that only say how to sample a trained model (steps, draws, the correction prior,
# the flow blend, context between windows): a fine-tune may change them freely.
SAMPLING_FIELDS = frozenset(
    {"sample_steps", "sample_draws", "sample_context_frames", "correction_prior", "temporal_blend", "reference_filter_width"}
)


class NeuralConfig(Spec):
    """Architecture, frame window and diffusion schedule of a VideoDenoiser.

    Sizes are in pixels and frames. The default is CPU-trainable at 64 x 64: about
    4.1 M parameters, 17 MB of float32 weights.
    """

    format: Literal["hybrid-neural/1"] = Field(FORMAT, description="config.json layout version")
    resolution: tuple[int, int] = Field(
        (64, 64),
        description="(height, width) in pixels the model was trained at; the sampler renders at this "
        "pixel count, shaped to the clip's aspect ratio",
    )
    window: int = Field(8, ge=1, le=256, description="frames denoised together")
    context_frames: int = Field(
        2, ge=0, description="frames of the previous window given as clean context to the next one"
    )
    sample_context_frames: Optional[int] = Field(
        None,
        ge=0,
        description="context frames when sampling, if not context_frames (training always uses context_frames). "
        "0: every window starts afresh from its warped noise; a model trained on clean context frames can "
        "drift when fed its own frames as context instead (exposure bias), which EVAL.md's long clips measure",
    )
    condition: tuple[str, ...] = Field(
        ("albedo", "normal", "depth", "mask", "instance_edges", "light", "ndotl"),
        description="condition groups (names in hybrid.neural.conditioning.CONDITIONS), stacked in this order",
    )
    base_channels: int = Field(32, ge=8, le=1024, description="channels of the first UNet level")
    channel_mults: tuple[int, ...] = Field(
        (1, 2, 3, 4), min_length=1, max_length=6, description="channel multiplier per UNet level (each halves H, W)"
    )
    res_blocks: int = Field(1, ge=1, le=8, description="ResNet blocks per level on the way down")
    temporal: Literal["attention", "conv"] = Field(
        "attention", description="how frames are tied: self-attention over T per pixel, or a 1-D conv over T"
    )
    temporal_from_level: int = Field(
        1, ge=0, description="first UNet level (0 = full resolution) that gets temporal layers"
    )
    attention_heads: int = Field(4, ge=1, description="heads of temporal and mid-block spatial attention")
    mid_attention: bool = Field(True, description="spatial self-attention in the middle block (global context)")
    groups: int = Field(8, ge=1, description="GroupNorm groups; must divide every level's channel count")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout inside ResNet blocks")
    # The clean frame ("sample") by default: buffers nearly determine the beauty frame, so
    # predicting it directly learns fastest. With the same 600 CPU steps of this architecture
    # at 32 x 32 on five MOVi-A clips, sampled with 20 DPM-Solver++ steps, it reached 31.7 dB
    # PSNR on a training clip and 29.8 dB on an unseen one, against 24.1 and 25.7 dB for
    # v-prediction, whose outputs kept visible grain: at low noise levels v is mostly the
    # noise itself, which a briefly trained network cannot yet tell from texture.
    prediction_type: Literal["epsilon", "v_prediction", "sample"] = Field(
        "sample", description="what the network predicts (diffusers' names): the clean frame, v or the noise"
    )
    output: Literal["frame", "detail_transfer"] = Field(
        "frame",
        description="frame: the model's frame at its working size is the output (enlarged to the clip's); "
        "detail_transfer: the model's correction to the raster beauty (its frame minus the raster_beauty "
        "condition) is upsampled guided by the exact buffers and added to the full-resolution raster beauty "
        "(hybrid.neural.upsample), so output is at the clip's resolution and as sharp as its buffers",
    )
    residual: bool = Field(
        False,
        description="the network's clean-frame prediction is the raster_beauty condition plus its output (a "
        "correction that starts at zero), so an untrained model already gives the raster frame; needs "
        "prediction_type 'sample' and the raster_beauty group",
    )
    sample_steps: int = Field(
        20,
        ge=1,
        le=1000,
        description="denoising steps per window when the caller does not say (the CLI's --steps default): the "
        "count the checkpoint was validated with",
    )
    sample_draws: int = Field(
        1,
        ge=1,
        le=64,
        description="independent noise draws rendered and averaged per clip (run as one batch): their mean "
        "estimates the expected frame given the buffers, so noise the network lets through (blotches on "
        "plain surfaces, flicker) averages out; the cost is this many forward passes per step",
    )
    correction_prior: Union[Annotated[float, Field(ge=0.0)], Literal["auto"]] = Field(
        0.0,
        description="detail_transfer with sample_draws > 1: the mean squared correction of the training data "
        "(target minus raster beauty, [-1, 1] units, at the working size); the averaged correction is multiplied "
        "by prior / (prior + the draws' variance there), so where the draws disagree (inputs unlike the "
        "training data) the frame falls back towards the raster beauty. 0 turns it off; 'auto' (training "
        "configs only) has the trainer measure it on the training data and write the number into the "
        "exported checkpoint (hybrid.train.prior)",
    )
    temporal_blend: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="detail_transfer only: each frame's correction is this fraction of its own plus the rest of "
        "the previous frame's output correction carried along the exact backward flow, on pixels visible in "
        "both (hybrid.neural.temporal); 1 turns it off. Lighting attached to surfaces stays put; a moving "
        "shadow's correction lags by about (1 - blend) / blend frames",
    )
    reference_filter_width: Optional[float] = Field(
        None,
        gt=0.0,
        le=10.0,
        description="detail_transfer only: the training targets' Cycles filter_width (px); the full-resolution "
        "raster frame is resampled with that Blackman-Harris pixel window before the correction is added "
        "(hybrid.neural.pixel_filter), because the rasteriser's box-filtered pixels are sharper than the path "
        "tracer's. None leaves the raster frame as it is",
    )
    train_timesteps: int = Field(1000, ge=10, le=10000, description="diffusion steps of the training schedule")
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = Field(
        "squaredcos_cap_v2", description="noise schedule (diffusers' names); the cosine one suits pixel space"
    )

    @field_validator("condition")
    @classmethod
    def _known_conditions(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        from hybrid.neural.conditioning import CONDITIONS

        if not names:
            raise ValueError("give at least one condition group, e.g. ['albedo', 'normal', 'depth']")
        for name in names:
            if name not in CONDITIONS:
                near = difflib.get_close_matches(name, list(CONDITIONS), n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise ValueError(f"unknown condition group {name!r}{hint}; known: {', '.join(CONDITIONS)}")
        if len(set(names)) != len(names):
            raise ValueError(f"condition groups repeat: {list(names)}")
        return names

    @field_validator("channel_mults")
    @classmethod
    def _positive_mults(cls, mults: tuple[int, ...]) -> tuple[int, ...]:
        if any(m < 1 for m in mults):
            raise ValueError(f"channel multipliers must be >= 1, got {list(mults)}")
        return mults

    @model_validator(mode="after")
    def _consistent(self) -> "NeuralConfig":
        if self.sample_context_frames is not None and self.sample_context_frames >= self.window:
            raise ValueError(
                f"sample_context_frames ({self.sample_context_frames}) must be smaller than window ({self.window})"
            )
        if self.context_frames >= self.window:
            raise ValueError(
                f"context_frames ({self.context_frames}) must be smaller than window ({self.window}): "
                "each window has to make at least one new frame"
            )
        f = self.factor
        h, w = self.resolution
        if h < f or w < f or h % f or w % f:
            raise ValueError(
                f"resolution {h}x{w} must be multiples of {f} (2 ** (levels - 1) for {len(self.channel_mults)} "
                "channel_mults levels)"
            )
        for m in self.channel_mults:
            ch = self.base_channels * m
            if ch % self.groups:
                raise ValueError(f"groups ({self.groups}) must divide every level's channels; {ch} is not a multiple")
            if ch % self.attention_heads:
                raise ValueError(f"attention_heads ({self.attention_heads}) must divide every level's channels ({ch})")
        if self.output == "detail_transfer" and "raster_beauty" not in self.condition:
            raise ValueError(
                "output 'detail_transfer' corrects the raster beauty, so `condition` must list 'raster_beauty'"
            )
        if self.correction_prior == "auto" and self.output != "detail_transfer":
            raise ValueError(
                "correction_prior 'auto' measures the training data's correction to the raster beauty, which "
                "only output 'detail_transfer' uses; leave it out (0) for output 'frame'"
            )
        if self.residual and (self.prediction_type != "sample" or "raster_beauty" not in self.condition):
            raise ValueError(
                "residual: true adds the raster beauty to a predicted clean frame, so it needs prediction_type "
                "'sample' and 'raster_beauty' in `condition`"
            )
        if self.temporal_from_level > len(self.channel_mults) - 1:
            raise ValueError(
                f"temporal_from_level ({self.temporal_from_level}) is past the deepest level "
                f"({len(self.channel_mults) - 1}); frames would never be tied together"
            )
        return self

    @property
    def factor(self) -> int:
        """H and W of any input must be multiples of this (the UNet halves them once per level)."""
        return 2 ** (len(self.channel_mults) - 1)

    @property
    def condition_channels(self) -> int:
        from hybrid.neural.conditioning import condition_channels

        return condition_channels(self.condition)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=1) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> "NeuralConfig":
        """Validate a dict (e.g. a parsed config.json); errors become NeuralConfigError naming `source` and the field."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as err:
            raise NeuralConfigError(validation_issues(err, source)) from None


def validation_issues(err: ValidationError, source: str) -> list[Issue]:
    """One issue per problem, written `source: field.path: message`, with the nearest field for a misspelled key.

    A config.json is not written by hand line by line, so the issues name no line.
    """
    issues = []
    fields = list(NeuralConfig.model_fields)
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            near = difflib.get_close_matches(str(e["loc"][0]), fields, n=1)
            msg = "unknown field" + (f" (did you mean {near[0]!r}?)" if near else f"; fields: {', '.join(fields)}")
        issues.append(Issue(source, 0, 0, loc, msg))
    return issues

