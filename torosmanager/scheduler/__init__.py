"""The scheduler daemon: receives Observation and Dome orders and dispatches them."""
