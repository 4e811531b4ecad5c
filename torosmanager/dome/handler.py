"""The dome daemon's checks on Dome orders."""

from ..handler import Handler
from ..workorders import refuse

BLINK_PREFIX = "Blink"


class DomeHandler(Handler):
    """Accept Dome orders for outputs this dome has."""

    service = "dome"
    wotypes = ("Dome",)

    def check(self, order):
        outputs = self.config["Dome"]["Auxiliary Outputs"]
        for key, value in order.items():
            if key.startswith(BLINK_PREFIX) and not 1 <= int(key[len(BLINK_PREFIX):]) <= outputs:
                raise refuse(key, value, f"Blink01 to Blink{outputs:02d}: this dome has "
                                         f"{outputs} auxiliary outputs (Dome → Auxiliary Outputs)")
