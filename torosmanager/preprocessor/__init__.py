"""The preprocessor daemon: calibrates CCD exposures."""

from .handler import PreprocessorHandler

__all__ = ["PreprocessorHandler"]
