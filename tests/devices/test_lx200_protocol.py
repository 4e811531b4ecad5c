"""The LX200 command language, without a mount: sexagesimal both ways, in both precisions."""

import pytest

from torosmanager.devices.lx200.protocol import (OnStepStatus, Precision, ProtocolError,
                                                  TenMicronStatus, format_dec, format_ra,
                                                  meade_distance_bars_slewing, parse_boolean,
                                                  parse_dec, parse_ra, set_dec_command,
                                                  set_ra_command, slew_refusal)

HIGH, LOW = Precision.HIGH, Precision.LOW


def hours(h, m=0, s=0.0):
    return h + m / 60 + s / 3600


def test_the_reference_documents_example_target_becomes_its_commands():
    # robotic-observatory-protocols.txt: RA 02:45:00, Dec +22°30'00".
    assert set_ra_command(hours(2, 45), HIGH) == ":Sr02:45:00#"
    assert set_dec_command(22.5, HIGH) == ":Sd+22*30:00#"


@pytest.mark.parametrize("value, high, low", [
    (hours(0), "00:00:00", "00:00.0"),
    (hours(2, 45), "02:45:00", "02:45.0"),
    (hours(12, 30, 29.4), "12:30:29", "12:30.5"),
    (hours(5, 7, 2.9), "05:07:03", "05:07.0"),
    # Rounding up carries into minutes and hours, and past 24 h back to 0 h.
    (hours(1, 59, 59.6), "02:00:00", "02:00.0"),
    (hours(23, 59, 59.9), "00:00:00", "00:00.0"),
    (hours(23, 59, 56), "23:59:56", "23:59.9"),
    (hours(23, 59, 57.5), "23:59:58", "00:00.0"),
    # Any hour is wrapped into [0, 24).
    (hours(25, 0, 0), "01:00:00", "01:00.0"),
    (-hours(1), "23:00:00", "23:00.0"),
])
def test_right_ascension_is_formatted_in_both_precisions(value, high, low):
    assert format_ra(value, HIGH) == high
    assert format_ra(value, LOW) == low


@pytest.mark.parametrize("value, high, low", [
    (22.5, "+22*30:00", "+22*30"),
    (0.0, "+00*00:00", "+00*00"),
    # Between -1° and 0 the sign is the only thing that says south.
    (-0.5, "-00*30:00", "-00*30"),
    (-(30 / 3600), "-00*00:30", "-00*01"),
    # A value that rounds to zero is not "-00".
    (-0.1 / 3600, "+00*00:00", "+00*00"),
    (-45.25, "-45*15:00", "-45*15"),
    (89 + 59 / 60 + 59.7 / 3600, "+90*00:00", "+90*00"),
    (-(9 + 59.6 / 60), "-09*59:36", "-10*00"),
    # Beyond the poles it is clipped.
    (91.0, "+90*00:00", "+90*00"),
    (-95.0, "-90*00:00", "-90*00"),
])
def test_declination_is_formatted_in_both_precisions_with_a_sign(value, high, low):
    assert format_dec(value, HIGH) == high
    assert format_dec(value, LOW) == low


@pytest.mark.parametrize("text, value, precision", [
    ("02:45:00", hours(2, 45), HIGH),
    ("23:59:59", hours(23, 59, 59), HIGH),
    ("02:45.5", hours(2, 45, 30), LOW),
    ("00:00.0", 0.0, LOW),
    ("15:46:18.03", hours(15, 46, 18.03), HIGH),  # 10micron ultra precision
    (" 7:05:09", hours(7, 5, 9), HIGH),
])
def test_right_ascension_is_parsed_with_its_precision(text, value, precision):
    parsed, found = parse_ra(text)
    assert parsed == pytest.approx(value, abs=1e-9)
    assert found is precision


@pytest.mark.parametrize("text, value, precision", [
    ("+22*30:00", 22.5, HIGH),
    ("+22*30", 22.5, LOW),
    ("-00*30", -0.5, LOW),
    ("-00*30:00", -0.5, HIGH),
    ("-00*00:01", -1 / 3600, HIGH),
    ("+90*00:00", 90.0, HIGH),
    ("-89*59:59.9", -(89 + 59 / 60 + 59.9 / 3600), HIGH),  # 10micron
    ("+45\xdf10:30", 45.175, HIGH),  # Autostar's degree sign
    ("+45\xdf10", 45 + 10 / 60, LOW),
    ("12*00'30", 12 + 30 / 3600, HIGH),  # no sign means north
])
def test_declination_is_parsed_with_its_precision(text, value, precision):
    parsed, found = parse_dec(text)
    assert parsed == pytest.approx(value, abs=1e-9)
    assert found is precision


@pytest.mark.parametrize("hours_value", [0.0, 2.75, 12.999, 23.9997, 6.123456])
@pytest.mark.parametrize("precision, resolution", [(HIGH, 1 / 3600), (LOW, 0.1 / 60)])
def test_a_formatted_right_ascension_parses_back_within_the_resolution(hours_value, precision,
                                                                       resolution):
    parsed, found = parse_ra(format_ra(hours_value, precision))
    difference = (parsed - hours_value + 12) % 24 - 12
    assert abs(difference) <= resolution / 2 + 1e-9
    assert found is precision


@pytest.mark.parametrize("degrees", [-90.0, -33.3333, -0.5, -0.0001, 0.0, 0.9999, 45.5, 89.9999])
@pytest.mark.parametrize("precision, resolution", [(HIGH, 1 / 3600), (LOW, 1 / 60)])
def test_a_formatted_declination_parses_back_within_the_resolution(degrees, precision,
                                                                   resolution):
    parsed, found = parse_dec(format_dec(degrees, precision))
    assert parsed == pytest.approx(degrees, abs=resolution / 2 + 1e-9)
    assert found is precision


@pytest.mark.parametrize("text", ["", "garbage", "24:00:00", "12:60:00", "12:00:60", "12:00",
                                  "12:00.10", "1:2:3", "12:00:00#", "\x06", "12-00-00"])
def test_anything_else_is_not_a_right_ascension(text):
    with pytest.raises(ProtocolError, match="not a right ascension"):
        parse_ra(text)


@pytest.mark.parametrize("text", ["", "garbage", "+91*00:00", "+90*00:01", "+12*60", "+12*00:60",
                                  "+12:00:00", "++12*00", "+120*00"])
def test_anything_else_is_not_a_declination(text):
    with pytest.raises(ProtocolError, match="not a declination"):
        parse_dec(text)


def test_a_bare_digit_accepts_or_refuses_and_nothing_else_does():
    assert parse_boolean("1") is True
    assert parse_boolean("0") is False
    for text in ("", "2", "1#", "P"):
        with pytest.raises(ProtocolError):
            parse_boolean(text)


def test_slew_refusals_say_why_with_the_mounts_message():
    assert slew_refusal("1", "Object Below Horizon") == (
        "the target is below the mount's horizon limit (mount says 'Object Below Horizon', "
        "code 1)")
    assert "higher than the mount's overhead limit" in slew_refusal("2", "")
    assert "parked" in slew_refusal("4", "")  # OnStep's codes go up to 9
    with pytest.raises(ProtocolError):
        slew_refusal("x", "")


def test_meade_distance_bars_mean_slewing_and_blanks_mean_done():
    assert meade_distance_bars_slewing("\x7f")
    assert meade_distance_bars_slewing("\xff\xff\xff" + " " * 29)
    assert not meade_distance_bars_slewing("")
    assert not meade_distance_bars_slewing(" " * 32)


@pytest.mark.parametrize("text, parked, slewing, tracking", [
    ("nNp", False, False, False),   # idle
    ("Np", False, False, True),     # tracking
    ("p", False, True, True),       # slewing (a goto tracks)
    ("np", False, True, False),
    ("nI", False, True, False),     # parking
    ("nNP", True, False, False),    # parked
    ("nNpHEA", False, False, False),
])
def test_onstep_status_letters(text, parked, slewing, tracking):
    status = OnStepStatus(text)
    assert (status.parked, status.slewing, status.tracking) == (parked, slewing, tracking)


def test_an_onstep_status_without_a_park_letter_is_garbage():
    with pytest.raises(ProtocolError, match="not an OnStep status"):
        OnStepStatus("nN")


@pytest.mark.parametrize("text, parked, slewing, tracking", [
    ("0", False, False, True), ("5", True, False, False), ("2", False, True, False),
    ("6", False, True, False), ("7", False, False, False), ("1", False, False, False),
])
def test_ten_micron_status_numbers(text, parked, slewing, tracking):
    status = TenMicronStatus(text)
    assert (status.parked, status.slewing, status.tracking) == (parked, slewing, tracking)


@pytest.mark.parametrize("text", ["", "x", "12", "-1"])
def test_an_unknown_ten_micron_status_is_garbage(text):
    with pytest.raises(ProtocolError, match="10micron status"):
        TenMicronStatus(text)
