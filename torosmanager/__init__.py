"""TOROS Manager: daemons that automate a small robotic telescope through a night.

The package is the library the five daemons share; importing it has no side effects.
"""

__version__ = "0.2.0"
