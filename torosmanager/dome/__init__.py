"""The dome daemon: executes Dome orders."""

from .handler import DomeHandler

__all__ = ["DomeHandler"]
