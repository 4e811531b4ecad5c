"""The telescope daemon: executes Observation orders."""
