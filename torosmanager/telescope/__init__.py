"""The telescope daemon: executes Observation orders."""

from .handler import TelescopeHandler

__all__ = ["TelescopeHandler"]
