"""``toros demo``: a whole simulated night with the five daemons, here (:mod:`torosmanager.demo`).

The demo makes its own configuration: ``--config`` is not read.
"""


def add_arguments(parser):
    """``toros demo`` takes no arguments."""


def run(config, arguments):
    """Run the demo night (*config* is ``None``: the demo makes its own); its exit status."""
    # Here, not above: the demo brings astropy and the daemons' launcher.
    from ..demo import run_demo

    return run_demo()
