"""The scheduler daemon: receives Observation and Dome orders and dispatches them."""

from .handler import SchedulerHandler

__all__ = ["SchedulerHandler"]
