"""Where the focuser should be: the focus model of ``Telescope → Focuser``.

A tube shrinks as it cools through the night and the focus moves with it; filters of different
thickness focus at different positions. The model is the one most small observatories keep by
hand (and autofocus runs refine):

    position = Best Position + Filter Offsets[filter]
               + Temperature Coefficient × (temperature − Reference Temperature)

with the temperature the focuser's own sensor reads, and, without Filter Offsets in the
configuration, those the filter wheel's driver keeps (ASCOM's ``FocusOffsets``). Without a
Reference Temperature, or a sensor, the temperature term is left out; without a Best Position
the focuser is not moved at all. The telescope daemon moves the focuser there after the filter
is set and before each light frame, when it is more than ``Tolerance`` steps away.
"""

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FocusModel:
    """The configured focus model.

    Attributes
    ----------
    best_position : int or None
        Steps at which focus is best at the reference temperature, through a filter without
        an offset; ``None``: the focuser is not moved.
    reference_temperature : float or None
        °C at the focuser's sensor when ``best_position`` was found.
    coefficient : float
        Steps per °C the tube warms.
    filter_offsets : dict
        Steps added through each filter, by name.
    tolerance : int
        Steps the focuser may be off before it is moved.
    """

    best_position: int | None
    reference_temperature: float | None = None
    coefficient: float = 0.0
    filter_offsets: dict[str, float] = field(default_factory=dict)
    tolerance: int = 0

    @classmethod
    def from_settings(cls, focuser):
        """The model of the ``Telescope → Focuser`` section."""
        return cls(best_position=focuser["Best Position"],
                   reference_temperature=focuser["Reference Temperature"],
                   coefficient=focuser["Temperature Coefficient"],
                   filter_offsets=dict(focuser["Filter Offsets"]),
                   tolerance=focuser["Tolerance"])

    def with_wheel_offsets(self, offsets):
        """This model, or, when it has no Filter Offsets of its own, the filter wheel's
        *offsets* (by filter name) in their place."""
        if self.filter_offsets or not offsets:
            return self
        return dataclasses.replace(self, filter_offsets=dict(offsets))

    def position(self, filter_name, temperature):
        """The position, steps, for *filter_name* at *temperature* (°C, or ``None`` when the
        focuser has no sensor), and how it was reached, for the order's step and the log;
        ``(None, "")`` when the model has no Best Position.

        Examples
        --------
        >>> model = FocusModel(50_000, 10.0, -20.0, {"B": 35})
        >>> model.position("B", 7.5)
        (50085, 'best 50000, filter B +35, 7.5 °C: +50')
        >>> model.position("V", None)
        (50000, 'best 50000')
        """
        if self.best_position is None:
            return None, ""
        offset = self.filter_offsets.get(filter_name, 0)
        parts = [f"best {self.best_position}"]
        if offset:
            parts.append(f"filter {filter_name} {offset:+g}")
        drift = 0.0
        if self.reference_temperature is not None and temperature is not None:
            drift = self.coefficient * (temperature - self.reference_temperature)
            if round(drift):
                parts.append(f"{temperature:g} °C: {round(drift):+d}")
        return round(self.best_position + offset + drift), ", ".join(parts)
