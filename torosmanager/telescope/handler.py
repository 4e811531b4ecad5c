"""The telescope daemon's checks on Observation orders.

Orders are journaled and queued here; executing them (slew, filter, exposures, FITS files) is
the job of the telescope executor.
"""

from ..handler import Handler
from ..workorders import refuse


class TelescopeHandler(Handler):
    """Accept Observation orders meant for this telescope."""

    service = "telescope"
    wotypes = ("Observation",)

    def check(self, order):
        name = self.config["Telescope"]["Name"]
        requested = order.setdefault("Telescope Name", name)
        if requested.casefold() != name.casefold():
            raise refuse("Telescope Name", requested,
                         f"{name!r}, the telescope this daemon drives (Telescope → Name)")
