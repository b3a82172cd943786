"""hybrid: physically consistent video from an explicit physics engine and exact buffers."""

__version__ = "0.1.0"
