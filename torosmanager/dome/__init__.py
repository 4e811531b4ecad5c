"""The dome daemon: executes Dome orders."""
