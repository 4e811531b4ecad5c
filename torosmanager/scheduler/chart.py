"""The altitude chart of a night's plan (``toros plan --plot FILE.png``).

Altitude against time (UTC below, local mean solar time above) for every planned target, each
one's planned interval drawn thick on its curve; the twilights (civil, nautical, astronomical)
and the plan's night (the Sun below its ``Sun Altitude``) shaded; the airmass limit as a line.

astropy is called once for the Sun and once for the sidereal time over the whole chart; the
targets' curves are numpy (:meth:`torosmanager.night.Night.altitudes`). matplotlib is used
through its object interface with the Agg renderer, so no display is needed and nothing global
(pyplot's state, the backend) is touched.
"""

import math
from datetime import timedelta

import numpy as np

from ..earth_rotation import iers_table
from ..night import Night, NightWindow
from ..units import DEGREES_PER_HOUR, HOURS_PER_DAY
from ..workorders import parse_utc

#: Hours shown before the night starts and after it ends, so the twilights are in the chart.
MARGIN_HOURS = 2.0
#: Spacing of the curves' samples, minutes.
SAMPLE_MINUTES = 2
#: The bands shaded, darkest last: each name and the Sun's altitude (degrees) where it begins;
#: each ends where the next begins.
TWILIGHTS = (("civil twilight", 0.0), ("nautical twilight", -6.0),
             ("astronomical twilight", -12.0), ("astronomical night", -18.0))
#: Grey of each band (0: white, 1: black), in the order of :data:`TWILIGHTS`.
TWILIGHT_GREYS = (0.05, 0.10, 0.16, 0.24)
#: The airmass limit drawn when the caller gives none.
DEFAULT_MAX_AIRMASS = 2.0
#: Figure size, inches, and resolution, dots per inch.
FIGURE_SIZE = (13.0, 7.0)
DPI = 110
#: Widths of a target's whole curve and of its planned interval, points.
CURVE_WIDTH = 0.8
PLANNED_WIDTH = 4.0
#: The ID written above each planned interval: its size and height above the curve, points.
LABEL_SIZE = 6
LABEL_OFFSET = 4
#: Legend rows per column: past this, the legend grows another column.
LEGEND_ROWS = 28


def curves(plan, site, times):
    """The Sun's altitude and each entry's altitude (degrees) at *times*.

    Parameters
    ----------
    plan : dict
        The scheduler's ``Plan`` (see :func:`torosmanager.scheduler.plan_command.as_dict`).
    site : dict
        The configuration's ``Site`` section.
    times : list of datetime
        UTC, timezone-aware.

    Returns
    -------
    sun : numpy.ndarray
        Shape ``(len(times),)``.
    targets : numpy.ndarray
        Shape ``(len(plan["Entries"]), len(times))``.
    """
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, get_body
    from astropy.time import Time

    iers_table()  # read once per process, not once per thread that needs it
    location = EarthLocation(lat=site["Latitude"] * u.deg, lon=site["Longitude"] * u.deg,
                             height=site["Elevation"] * u.m)
    instants = Time(times)
    sun = get_body("sun", instants, location).transform_to(
        AltAz(obstime=instants, location=location)).alt.deg
    entries = plan.get("Entries", [])
    if not entries:
        return np.asarray(sun), np.empty((0, len(times)))
    lst = instants.sidereal_time("apparent", longitude=site["Longitude"] * u.deg).radian
    # Night.altitudes needs only the sidereal times and the equinox of a window.
    window = NightWindow(start=times[0], end=times[-1], sun_limit=plan.get("Sun Altitude"),
                         times=np.array([np.datetime64(t.replace(tzinfo=None), "s")
                                         for t in times]),
                         lst_radians=np.asarray(lst), equinox_jyear=float(instants[0].jyear))
    ra = np.array([entry["RA"] for entry in entries], dtype=float)
    dec = np.array([entry["Dec"] for entry in entries], dtype=float)
    return np.asarray(sun), Night(site).altitudes(window, ra, dec)


def draw(plan, site, path, max_airmass=DEFAULT_MAX_AIRMASS, minimum_altitude=0.0):
    """Draw the altitude chart of *plan* at *site* into the PNG file *path*.

    Parameters
    ----------
    plan : dict
        The scheduler's ``Plan``: ``Night Start``, ``Night End``, ``Sun Altitude`` and
        ``Entries`` (``ID``, ``Start``, ``End``, ``RA``, ``Dec``, ``Target``).
    site : dict
        The configuration's ``Site`` section.
    path : str
        The PNG file to write.
    max_airmass : float
        The airmass limit drawn (``Observing → Max Airmass``).
    minimum_altitude : float
        ``Observing → Minimum Altitude``: drawn instead where it is higher, as the plan keeps.

    Raises
    ------
    ValueError
        When the plan has no night (no dark hours were found).
    """
    from matplotlib import dates
    from matplotlib.figure import Figure

    if not plan.get("Night Start") or not plan.get("Night End"):
        raise ValueError("the plan has no night to draw (no dark hours at the site)")
    night_start, night_end = parse_utc(plan["Night Start"]), parse_utc(plan["Night End"])
    margin = timedelta(hours=MARGIN_HOURS)
    step = timedelta(minutes=SAMPLE_MINUTES)
    count = int((night_end - night_start + 2 * margin) / step) + 1
    times = [night_start - margin + i * step for i in range(count)]
    sun, altitudes = curves(plan, site, times)

    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI)
    axes = figure.add_subplot()
    _shade_twilights(axes, times, sun, plan.get("Sun Altitude"), night_start, night_end)
    limit = math.degrees(math.asin(1.0 / max_airmass))
    label = f"airmass {max_airmass:g} (altitude {limit:.1f}°)"
    if minimum_altitude > limit:
        limit, label = minimum_altitude, f"Minimum Altitude {minimum_altitude:g}°"
    axes.axhline(limit, color="firebrick", linestyle="--", linewidth=1.0, label=label)
    _draw_targets(axes, plan.get("Entries", []), times, altitudes)

    axes.set_xlim(times[0], times[-1])
    axes.set_ylim(0.0, 90.0)
    axes.set_ylabel("altitude (degrees)")
    axes.set_xlabel(f"UTC, night of {night_start:%Y-%m-%d}")
    axes.xaxis.set_major_locator(dates.HourLocator())
    axes.xaxis.set_major_formatter(dates.DateFormatter("%H:%M"))
    _local_time_axis(axes, site["Longitude"], dates)
    name = site.get("Name", "")
    planned = len(plan.get("Entries", []))
    axes.set_title(f"{name} plan: {planned} observation{'s' if planned != 1 else ''}, "
                   f"made {plan.get('Made', 'never')}")
    rows = planned + 1 + len(TWILIGHTS)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="x-small",
                ncols=max(1, math.ceil(rows / LEGEND_ROWS)), frameon=False)
    figure.savefig(path, format="png", bbox_inches="tight")


def _shade_twilights(axes, times, sun, sun_limit, night_start, night_end):
    """Grey bands, darker as the Sun goes lower, and the plan's night edges as lines."""
    ends = [below for _, below in TWILIGHTS[1:]] + [None]
    for (name, below), end, grey in zip(TWILIGHTS, ends, TWILIGHT_GREYS):
        # Darker bands are drawn over lighter ones, so each shows only its own range.
        label = (f"{name} (Sun {below:g}° to {end:g}°)" if end is not None
                 else f"{name} (Sun below {below:g}°)")
        axes.fill_between(times, 0, 1, where=sun < below, transform=axes.get_xaxis_transform(),
                          color=str(1.0 - grey), linewidth=0, step="mid", label=label)
    label = "the plan's night"
    if sun_limit is not None:
        label += f" (Sun below {sun_limit:g}°)"
    for edge in (night_start, night_end):
        axes.axvline(edge, color="midnightblue", linewidth=1.2, label=label)
        label = None  # one legend entry for both edges


def _draw_targets(axes, entries, times, altitudes):
    """Each target's curve, thin, and its planned interval, thick, in one colour."""
    from matplotlib import colormaps

    palette = colormaps["tab20"]
    seconds = np.array([(t - times[0]).total_seconds() for t in times])
    for index, (entry, curve) in enumerate(zip(entries, altitudes)):
        colour = palette(index % palette.N)
        axes.plot(times, curve, color=colour, linewidth=CURVE_WIDTH, alpha=0.7)
        start, end = parse_utc(entry["Start"]), parse_utc(entry["End"])
        inside = [(start - times[0]).total_seconds(), (end - times[0]).total_seconds()]
        # The interval's own ends, and the samples between them, on the curve.
        span = np.concatenate(([inside[0]], seconds[(seconds > inside[0])
                                                    & (seconds < inside[1])], [inside[1]]))
        heights = np.interp(span, seconds, curve)
        axes.plot([times[0] + timedelta(seconds=float(s)) for s in span], heights,
                  color=colour, linewidth=PLANNED_WIDTH, solid_capstyle="butt",
                  label=f"{entry['ID']}  {entry.get('Target', '')}")
        # Colours repeat past the palette's size: the ID next to the interval tells them apart.
        axes.annotate(entry["ID"], (start + (end - start) / 2, float(heights.mean())),
                      xytext=(0, LABEL_OFFSET), textcoords="offset points", ha="center",
                      fontsize=LABEL_SIZE, color=colour)


def _local_time_axis(axes, longitude, dates):
    """Local mean solar time (UTC + longitude / 15 h) on the top axis."""
    offset_days = longitude / DEGREES_PER_HOUR / HOURS_PER_DAY
    top = axes.secondary_xaxis("top", functions=(lambda x: x + offset_days,
                                                 lambda x: x - offset_days))
    top.xaxis.set_major_locator(dates.HourLocator())
    top.xaxis.set_major_formatter(dates.DateFormatter("%H:%M"))
    hours = longitude / DEGREES_PER_HOUR
    sign = "+" if hours >= 0 else "−"
    whole, minutes = divmod(round(abs(hours) * 60), 60)
    top.set_xlabel(f"local mean solar time (UTC{sign}{whole:02d}:{minutes:02d})")
