"""Work-order schemas: what is accepted, how it is normalised, and what each refusal says."""

import ast
import pathlib
import re
from datetime import datetime, timezone

import pytest

from torosmanager.examples import MANUAL_DOME, MANUAL_OBSERVATION
from torosmanager.workorders import FaultCode, WorkOrderError, clip, clip_priority, validate

MANUAL = pathlib.Path(__file__).resolve().parents[2] / "shared" / "reference" / \
    "toros-manager-docs.txt"


def observation(**changes):
    order = {"WOType": "Observation", "RA": 10.0, "Dec": -20.0, "Filter": "V",
             "Exposure Time": 60}
    order.update(changes)
    return order


def refusal(order):
    with pytest.raises(WorkOrderError) as caught:
        validate(order)
    return caught.value


class TestTheManualsExamples:
    def test_observation_is_accepted_as_written(self):
        order = validate(MANUAL_OBSERVATION)
        assert order["ID"] == "1"
        assert order["RA"] == 23.1 and order["Dec"] == 13.2
        assert order["Calibration Frames"] is True  # "Yes"
        assert order["Datetime"] == "2019-03-05T14:34:54.234Z"

    def test_dome_is_accepted_as_written(self):
        order = validate(MANUAL_DOME)
        assert order["Blink01"] is True and order["Priority"] == 2.0

    def test_a_none_priority_is_left_for_the_scheduler(self):
        assert "Priority" not in validate(dict(MANUAL_OBSERVATION, Priority=None))

    @pytest.mark.skipif(not MANUAL.exists(), reason=f"the manual is not at {MANUAL}")
    def test_the_manuals_own_text_is_accepted(self):
        """The two examples are read from the manual itself, as Python literals."""
        text = MANUAL.read_text(encoding="utf-8")
        blocks = re.findall(r"```\n(\{.*?\})\n```", text, flags=re.S)
        examples = [ast.literal_eval(block) for block in blocks if "..." not in block]
        assert [example["WOType"] for example in examples] == ["Observation", "Dome"]
        for example in examples:
            assert validate(example)["ID"] == "1"


class TestCoordinates:
    # A number is degrees, a sexagesimal string is hours: "23:06:00" is 23.1 h, 346.5°.
    @pytest.mark.parametrize("ra, degrees", [(0, 0.0), (359.999, 359.999), ("23:06:00", 346.5),
                                             ("00:00:36", 0.15), ("12 30 00", 187.5),
                                             ("23:59:59.99999999", 0.0)])  # not 360, refused later
    def test_ra_in_degrees_or_hours(self, ra, degrees):
        assert validate(observation(RA=ra))["RA"] == pytest.approx(degrees)

    def test_the_manuals_ra_is_degrees_and_its_sexagesimal_form_is_hours(self):
        """The manual's 23.1 is 23.1°; the same target as a string is '01:32:24' (hours), not
        '23:06:00' (346.5°, 323° away)."""
        manual = validate(MANUAL_OBSERVATION)["RA"]
        assert manual == 23.1
        assert validate(observation(RA="01:32:24"))["RA"] == pytest.approx(manual)
        assert validate(observation(RA="23:06:00"))["RA"] == pytest.approx(manual + 323.4)

    @pytest.mark.parametrize("key, forms", [
        ("RA", ["decimal degrees from 0 to below 360 (a number)",
                "hours as a sexagesimal string 'HH:MM:SS'"]),
        ("Dec", ["decimal degrees from -90 to +90 (a number)",
                 "degrees as a sexagesimal string '±DD:MM:SS'"]),
    ])
    def test_a_refused_angle_names_the_unit_of_each_form(self, key, forms):
        for value in (400, "99:99:99"):
            message = str(refusal(observation(**{key: value})))
            assert all(form in message for form in forms), message

    @pytest.mark.parametrize("dec, degrees", [(-90, -90.0), (90, 90.0), ("+13:12:00", 13.2),
                                              ("-00:30:00", -0.5), ("-05:15:36", -5.26),
                                              # the Unicode minus that web pages print
                                              ("\u221205:15:36", -5.26)])
    def test_dec_in_degrees_or_sexagesimal(self, dec, degrees):
        assert validate(observation(Dec=dec))["Dec"] == pytest.approx(degrees)

    @pytest.mark.parametrize("key, value", [("RA", 360), ("RA", -1), ("RA", "24:00:00"),
                                            ("RA", "12:61:00"), ("RA", "twelve"), ("RA", True),
                                            ("Dec", 90.5), ("Dec", "+91:00:00"), ("Dec", None)])
    def test_out_of_range_or_malformed_angles_are_refused_by_name(self, key, value):
        error = refusal(observation(**{key: value}))
        assert error.code == FaultCode.INVALID
        assert repr(key) in str(error)
        if value is not None:
            assert f"received {value!r}" in str(error)
            assert "allowed:" in str(error)


class TestRefusals:
    @pytest.mark.parametrize("key, value", [("ID", "a\nINFO a line of the client's making"),
                                            ("User", "ops\rroot"), ("Object Name", "M31\x1b[31m"),
                                            ("Filter", "I\tR"),
                                            ("ID", "a\u2028INFO a line for readers of Unicode"),
                                            ("User", "ops\u202eroot"),  # shown as "opstoor"
                                            ("ID", "a-1\u200b"), ("Object Name", "\ufeffM31")])
    def test_a_name_or_an_id_on_more_than_one_line_or_disguised_is_refused(self, key, value):
        # A log line quotes it: a line break would start a line the client wrote, and an
        # invisible character would make it look like another.
        message = str(refusal(observation(**{key: value})))
        assert f"{key!r}: received {value!r}" in message
        assert "on one line (no control characters or invisible ones)" in message

    @pytest.mark.parametrize("value", ["M31 \u0645\u062c\u0631\u0629", "Andr\u00f3meda \u2604",
                                       "\u0645\u06cc\u200c\u0631\u0648\u062f"])  # ZWNJ
    def test_names_in_any_script_are_taken(self, value):
        assert validate(observation(**{"Object Name": value}))["Object Name"] == value

    def test_white_space_around_a_name_is_left_out(self):
        order = validate(observation(ID=" a-1\n", Filter="I "))
        assert (order["ID"], order["Filter"]) == ("a-1", "I")

    def test_unknown_wotype_lists_the_accepted_ones(self):
        error = refusal({"WOType": "Observe"})
        assert error.code == FaultCode.UNKNOWN_WOTYPE
        for name in ("Observation", "Dome", "Preprocessing", "Status", "Cancel"):
            assert repr(name) in str(error)

    def test_missing_wotype(self):
        assert refusal({"RA": 1}).code == FaultCode.UNKNOWN_WOTYPE

    def test_a_misspelt_key_is_refused_with_a_suggestion(self):
        order = observation()
        order["Exposure time"] = order.pop("Exposure Time")
        message = str(refusal(order))
        assert "'Exposure time': received 60" in message
        assert "did you mean 'Exposure Time'?" in message

    @pytest.mark.parametrize("key", ["RA", "Dec", "Filter", "Exposure Time"])
    def test_required_keys(self, key):
        order = observation()
        del order[key]
        assert f"{key!r} is required" in str(refusal(order))

    @pytest.mark.parametrize("key, value", [
        ("Exposure Time", 0), ("Exposure Time", -5), ("Exposure Time", "30"),
        ("Number of Exposures", 0), ("Number of Exposures", 1.5),
        ("Calibration Frames", "Maybe"), ("Output", "Print"), ("Priority", "high"),
        ("Datetime", "yesterday"), ("User", ""), ("ID", ""), ("ID", 1.5)])
    def test_values_not_allowed(self, key, value):
        message = str(refusal(observation(**{key: value})))
        assert message.startswith(f"{key!r}: received {value!r}; allowed: ")

    def test_not_a_dict(self):
        assert "must be a dict" in str(refusal(["WOType", "Observation"]))

    def test_a_dome_order_needs_an_action(self):
        assert "at least one action" in str(refusal({"WOType": "Dome", "User": "x"}))

    @pytest.mark.parametrize("key", ["Blink1", "Blink\u0660\u0661"])  # Arabic-Indic 01
    def test_blink_keys_are_two_digits(self, key):
        assert repr(key) in str(refusal({"WOType": "Dome", key: True}))

    @pytest.mark.parametrize("offset", [10 ** 19, 1e300])
    def test_a_plan_offset_beyond_any_queue_is_refused(self, offset):
        message = str(refusal({"WOType": "Plan", "Offset": offset}))
        assert message == (f"'Offset': received {offset!r}; allowed: a whole number ≥ 0 and "
                           "≤ 1,000,000,000")


class TestNormalisation:
    def test_missing_id_and_datetime_are_assigned(self):
        now = datetime(2026, 11, 21, 23, 0, tzinfo=timezone.utc)
        first, second = validate(observation(), now=now), validate(observation(), now=now)
        assert first["ID"] and first["ID"] != second["ID"]
        assert first["Datetime"] == "2026-11-21T23:00:00.000Z"

    def test_datetime_with_an_offset_is_converted_to_utc(self):
        order = validate(observation(Datetime="2026-11-21T18:00:00-06:00"))
        assert order["Datetime"] == "2026-11-22T00:00:00.000Z"

    @pytest.mark.parametrize("received", ["0001-01-01T00:30:00+01:00",
                                          "9999-12-31T23:30:00-01:00"])
    def test_a_datetime_with_no_utc_instant_is_refused(self, received):
        with pytest.raises(WorkOrderError, match="'Datetime': received"):
            validate(observation(Datetime=received))

    def test_integer_ids_become_strings(self):
        assert validate(observation(ID=42))["ID"] == "42"

    def test_defaults(self):
        order = validate(observation())
        assert order["Number of Exposures"] == 1
        assert order["Calibration Frames"] is False
        assert order["Output"] == "Raw"
        assert order["User"] == "unknown"

    def test_choices_ignore_case(self):
        assert validate(observation(Output="analysis"))["Output"] == "Analysis"

    @pytest.mark.parametrize("requested, clipped", [(-3, 0.0), (11, 10.0), (7.5, 7.5)])
    def test_priorities_are_clipped_to_0_10(self, requested, clipped):
        assert clip_priority(requested) == clipped


class TestPreprocessing:
    def test_the_original_managers_request_form(self):
        order = validate({"Request": "Exposure Calibration",
                          "File Location": "file:///data/20261121"})
        assert order["WOType"] == "Preprocessing"
        assert order["File Location"] == "/data/20261121"

    def test_a_list_of_files(self):
        order = validate({"WOType": "Preprocessing", "File Location": ["/a.fits", "/b.fits"]})
        assert order["File Location"] == ["/a.fits", "/b.fits"]

    def test_a_file_url_is_percent_decoded_as_urls_are_written(self):
        """pathlib's as_uri() writes a space as %20 and an accent as UTF-8 bytes: a client
        sending a night's URL so was refused its frames ('no such file or directory')."""
        night = pathlib.PurePosixPath("/data/Cordón night/20261121")
        order = validate({"WOType": "Preprocessing", "File Location": night.as_uri()})
        assert order["File Location"] == str(night)
        order = validate({"WOType": "Preprocessing", "File Location": "/data/a%20b"})
        assert order["File Location"] == "/data/a%20b"  # a path is taken as it is written

    @pytest.mark.parametrize("location", ["file://localhost/data/20261121",
                                          "file://LOCALHOST/data/20261121"])
    def test_a_file_url_naming_localhost_is_this_machines_path(self, location):
        """RFC 8089's other form of a local file (``file:/`` is refused as before)."""
        order = validate({"WOType": "Preprocessing", "File Location": location})
        assert order["File Location"] == "/data/20261121"

    @pytest.mark.parametrize("location", ["relative/dir", "file://host/dir",
                                          "file://localhostile/dir", [], 5, "/data/a\0b",
                                          "file:///data/a%00b", ["/data/a", "/data/\0"],
                                          "/" + "a/" * 2048])
    def test_only_absolute_local_paths_without_nul_and_of_at_most_4096_bytes(self, location):
        # (A NUL was an internal error at the preprocessor; a path of hundreds of thousands of
        # parts held its front desk for seconds.)
        message = str(refusal({"WOType": "Preprocessing", "File Location": location}))
        assert message.startswith(f"'File Location': received {location!r}"[:60])
        assert message.endswith("allowed: an absolute path or file:// URL (a path of at most "
                                "4,096 bytes, without NUL), or a list of them")

    def test_a_path_of_4096_bytes_is_taken(self):
        longest = "/" + "a/" * 2047 + "b"
        assert len(longest) == 4096
        assert validate({"WOType": "Preprocessing", "File Location": longest})[
            "File Location"] == longest


def test_queries_get_no_id_assigned():
    assert validate({"WOType": "Status"}) == {"WOType": "Status"}
    assert "need what to cancel; allowed keys: 'ID', 'Group ID'" in str(
        refusal({"WOType": "Cancel"}))


@pytest.mark.parametrize("text, clipped", [
    ("short enough", "short enough"),
    # Cut where a word ends (the limit falls inside the seventh), and the length given.
    ("calibration " * 10, "calibration " * 5 + "calibration… (120 characters)"),
    # ... its trailing comma dropped.
    ("the frame's header is damaged, " * 4,
     "the frame's header is damaged, the frame's header is damaged, the frame's header… "
     "(124 characters)"),
    # One long word: cut where the limit falls.
    ("x" * 100, "x" * 80 + "… (100 characters)"),
])
def test_a_long_message_is_clipped_at_the_end_of_a_word(text, clipped):
    assert clip(text) == clipped
