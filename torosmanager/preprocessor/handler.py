"""The preprocessor daemon's checks on Preprocessing orders.

A ``File Location`` must exist and lie inside one of the configured
``Preprocessor → Allowed Directories``: the daemon writes its products next to the frames it
reads, so a client must not be able to point it anywhere on the disk.
"""

import os

from ..handler import Handler
from ..workorders import refuse


class PreprocessorHandler(Handler):
    """Accept Preprocessing orders for files this daemon may read."""

    service = "preprocessor"
    wotypes = ("Preprocessing",)

    def check(self, order):
        location = order["File Location"]
        allowed = [os.path.realpath(root) for root in self.config["Preprocessor"]["Allowed Directories"]]
        for path in location if isinstance(location, list) else [location]:
            real = os.path.realpath(path)
            if not any(real == root or real.startswith(root + os.sep) for root in allowed):
                raise refuse("File Location", path, "a path inside " + " or ".join(allowed)
                             + " (Preprocessor → Allowed Directories)")
            if not os.path.exists(real):
                raise refuse("File Location", path, "an existing directory or FITS file; "
                                                    "nothing is there")
