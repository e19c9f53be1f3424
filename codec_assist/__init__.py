"""codec-assist: content-aware video encoding assistant."""

__version__ = "0.1.0"
