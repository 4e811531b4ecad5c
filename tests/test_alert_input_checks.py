"""Alerts and skymaps with values of the wrong type or out of range: each refused with a
message that names the field, the value received and what is allowed (the Alert order's
failure message), never a Python error escaping the reader (an "internal error").

Found by an audit; each test here failed before its fix.
"""

import base64
import io
import json
import math
import re
import xmlrpc.client
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from alert_fixtures import FOLLOWUP_ADVOCATE, alert_file
from test_alert_formats import lvk_alert
from torosmanager import config, workorders
from torosmanager.alerts.formats import AlertFormatError, gcn_socket, read
from torosmanager.alerts.formats.lvk_json import schema_warning
from torosmanager.alerts.intake import alert_of
from torosmanager.alerts.policy import neutron_star_probability
from torosmanager.alerts.skymap import Skymap, flat_fits
from torosmanager.alerts.tiles import CANDIDATE_LEVEL

DOCS = Path(__file__).resolve().parents[1] / "docs"
#: A multi-order map's order: nside 2, 48 pixels.
ORDER = 1
#: The time zone offsets beyond ±23:59 that a time must not have.
OUT_OF_RANGE_ZONES = ["2023-05-18T12:59:08+99:99", "2023-05-18T12:59:08+24:00",
                      "2023-05-18T12:59:08-12:60"]
#: Times that are valid dates as written, but whose UTC moment is beyond year 1 to 9999.
OUT_OF_RANGE_TIMES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


def refusal(format_name, payload):
    """The message of the AlertFormatError reading *payload* raises (no other exception)."""
    with pytest.raises(AlertFormatError) as caught:
        read(format_name, payload)
    return str(caught.value)


# --- LVK JSON ------------------------------------------------------------------------------------

@pytest.mark.parametrize("section, name, value", [
    ("classification", "BNS", "abc"),
    ("classification", "NSBH", [0.5]),
    ("classification", "BNS", 1.5),
    ("properties", "HasNS", "abc"),
    ("properties", "HasRemnant", True),
    ("properties", "HasRemnant", {"p": 0.9}),
])
def test_an_lvk_probability_that_is_no_probability_is_left_out_and_said(section, name, value):
    # Optional to the reader: the alert is read, as without it, and the log says why (several
    # real alerts do not fit the schema; a mistyped field must not lose an event).
    alert = read("lvk_json", lvk_alert({section: {name: value}}))
    probabilities = alert.properties.get("classification", {}) if section == "classification" \
        else alert.properties
    assert name not in probabilities
    warning = schema_warning(alert)
    assert f"event.{section}.{name}" in warning and f"(received {value!r}), left out" in warning


def test_an_lvk_probability_given_as_numeric_text_is_read_as_the_number():
    # As every reader takes a number given as text (the schema's warning says it is one).
    alert = read("lvk_json", lvk_alert({"classification": {"BNS": "0.5", "NSBH": 0.25},
                                        "properties": {"HasRemnant": "0.9", "HasMassGap": None}}))
    assert alert.properties["classification"] == {"BNS": 0.5, "NSBH": 0.25}
    assert alert.properties["HasRemnant"] == 0.9 and "HasMassGap" not in alert.properties
    assert neutron_star_probability(alert.properties) == 0.75


@pytest.mark.parametrize("url", [5, ["https://example.org/map.fits"], True])
def test_an_lvk_skymap_url_that_is_no_string_is_refused_naming_it(url):
    message = refusal("lvk_json", lvk_alert({"skymap": None}, urls={"skymap": url}))
    assert "urls.skymap must be a URL" in message and f"received {url!r}" in message


def test_an_lvk_skymap_url_alone_is_read():
    url = "https://example.org/S230518h/bayestar.multiorder.fits"
    alert = read("lvk_json", lvk_alert({"skymap": None}, urls={"skymap": url}))
    assert alert.skymap is None and alert.skymap_url == url


@pytest.mark.parametrize("time", OUT_OF_RANGE_TIMES)
@pytest.mark.parametrize("field", ["time_created", "event.time"])
def test_an_lvk_time_whose_utc_moment_is_beyond_the_calendar_is_refused(field, time):
    payload = (lvk_alert(time_created=time) if field == "time_created"
               else lvk_alert({"time": time}))
    message = refusal("lvk_json", payload)
    assert field in message and repr(time) in message


@pytest.mark.parametrize("time", OUT_OF_RANGE_ZONES)
def test_an_lvk_time_zone_offset_out_of_range_is_refused(time):
    message = refusal("lvk_json", lvk_alert(time_created=time))
    assert "time_created" in message and "offset" in message and repr(time) in message


def test_an_lvk_time_with_a_valid_offset_is_read_as_utc():
    alert = read("lvk_json", lvk_alert(time_created="2023-05-18T23:59:08-23:59"))
    assert alert.issued == datetime(2023, 5, 19, 23, 58, 8, tzinfo=timezone.utc)


def test_a_null_superevent_id_is_said_to_be_null_not_missing():
    # ligo-followup-advocate's own example alert: "superevent_id": null, which the schema
    # does not allow (a string).
    path = alert_file("S2376/files/S2376-1-preliminary.json", FOLLOWUP_ADVOCATE)
    message = refusal("lvk_json", path.read_bytes())
    assert "'superevent_id' is null" in message and "missing" not in message
    assert "a non-empty string" in message and message.endswith("received None")


# --- GCN JSON and VOEvent ------------------------------------------------------------------------

def gcn_notice(**changes):
    notice = {"trigger_time": "2024-01-01T00:00:00Z", "id": ["1"], "ra": 10.0, "dec": 20.0,
              "ra_dec_error": 0.5}
    notice.update(changes)
    return json.dumps(notice)


@pytest.mark.parametrize("time", OUT_OF_RANGE_TIMES + OUT_OF_RANGE_ZONES)
@pytest.mark.parametrize("field", ["trigger_time", "alert_datetime"])
def test_a_gcn_json_time_out_of_range_is_refused_naming_it(field, time):
    message = refusal("gcn_json", gcn_notice(**{field: time}))
    assert field in message and repr(time) in message


@pytest.mark.parametrize("url", [5, {"href": "x"}])
def test_a_gcn_json_healpix_url_that_is_no_string_is_refused(url):
    message = refusal("gcn_json", gcn_notice(ra=None, dec=None, ra_dec_error=None,
                                             healpix_url=url))
    assert "healpix_url must be a URL" in message


@pytest.mark.parametrize("serial", [2 ** 63, 10 ** 30, "3"])
def test_a_gcn_json_record_number_beyond_what_is_kept_is_refused(serial):
    message = refusal("gcn_json", gcn_notice(record_number=serial))
    assert "record_number must be a whole number from 0 to 9223372036854775807" in message


def swift_voevent(date=None, **params):
    """GCN's Swift BAT VOEvent (gwcelery's test data), with its Who/Date and the values of
    Params *params* replaced."""
    xml = alert_file("swift_grb_gcn.xml").read_text()
    if date is not None:
        xml, count = re.subn(r"<Date>.*?</Date>", f"<Date>{date}</Date>", xml)
        assert count == 1
    for name, value in params.items():
        xml, count = re.subn(rf'(<Param name="{name}"\s+value=")[^"]*"', rf'\g<1>{value}"', xml)
        assert count == 1
    return xml


@pytest.mark.parametrize("time", OUT_OF_RANGE_TIMES + OUT_OF_RANGE_ZONES)
def test_a_voevent_date_out_of_range_is_refused_naming_it(time):
    message = refusal("voevent", swift_voevent(date=time))
    assert "Who/Date" in message and repr(time) in message


@pytest.mark.parametrize("serial", ["²", "1" * 5000, str(2 ** 63)])
def test_a_voevent_serial_that_int_cannot_take_or_sqlite_cannot_keep_is_refused(serial):
    xml = swift_voevent(Pkt_Ser_Num=serial)
    assert "Param Pkt_Ser_Num must be a whole number from 0 to" in refusal("voevent", xml)


def test_a_voevent_packet_type_of_unicode_digits_is_not_a_packet_type():
    alert = read("voevent", swift_voevent(Packet_Type="6¹"))
    assert "Packet_Type" not in alert.properties and alert.error_radius == 0.05


# --- binary Payloads -----------------------------------------------------------------------------

def gcn_socket_packet():
    fields = [0] * 40
    fields[gcn_socket.PKT_TYPE] = gcn_socket.SWIFT_BAT_GRB_POS_ACK
    fields[gcn_socket.TRIG_OBS_NUM] = 1123129
    fields[gcn_socket.BURST_TJD] = 19829
    fields[gcn_socket.BURST_SOD] = 5072576
    fields[gcn_socket.BURST_RA] = 2688700
    fields[gcn_socket.BURST_DEC] = -203153
    fields[gcn_socket.BURST_ERROR] = 500
    return gcn_socket.PACKET.pack(*fields)


@pytest.mark.parametrize("wrap", [
    lambda data: base64.encodebytes(data).decode("ascii"),                    # the base64 command
    lambda data: base64.encodebytes(data).decode("ascii").replace("\n", "\r\n"),   # MIME
    lambda data: " " + "\t".join(re.findall(".{1,16}", base64.b64encode(data).decode())) + "\n",
], ids=["encodebytes", "MIME", "spaces and tabs"])
def test_a_binary_payload_in_base64_with_line_breaks_is_read(wrap):
    now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    skymap = flat_fits(np.full(12, 1 / 12))
    assert len(base64.encodebytes(skymap).splitlines()) > 1
    alert = alert_of({"Format": "skymap", "Payload": wrap(skymap), "Event ID": "S1"}, now)
    assert alert.skymap == skymap
    alert = alert_of({"Format": "gcn_socket", "Payload": wrap(gcn_socket_packet())}, now)
    assert (alert.event_id, alert.ra) == ("Swift-1123129", 268.87)


@pytest.mark.parametrize("junk", ["not base64!", "QUJD\u00a0REVG", "QUJD\u2028REVG", "QUJD*REVG"])
def test_a_binary_payload_with_anything_else_than_base64_and_ascii_whitespace_is_refused(junk):
    now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    with pytest.raises(AlertFormatError, match="must be base64"):
        alert_of({"Format": "skymap", "Payload": junk, "Event ID": "S1"}, now)


@pytest.mark.parametrize("format_name, name", [("voevent", "fermi_grb_gcn.xml"),
                                               ("gcn_json", "kafka_alert_icecube_gold.json")])
def test_a_text_format_sent_as_an_xmlrpc_binary_is_read_as_its_text(format_name, name):
    """XML-RPC clients send bytes as base64: the front desk keeps them so, and JSON and XML
    begin with characters no base64 has."""
    data = alert_file(name).read_bytes()
    payload = workorders.alert_payload(xmlrpc.client.Binary(data))
    now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert alert_of({"Format": format_name, "Payload": payload}, now) == \
        alert_of({"Format": format_name, "Payload": data.decode()}, now)
    with pytest.raises(AlertFormatError, match="a binary Payload for a text format must be its "
                                               "UTF-8 text"):
        alert_of({"Format": format_name, "Payload": base64.b64encode(b"\xff\xfe").decode()},
                 now)


def test_an_operators_reason_that_looks_like_base64_is_kept_as_written():
    now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    alert = alert_of({"Format": "retraction", "Event ID": "S1", "Payload": "LIGO",
                      "User": "alice"}, now)
    assert alert.properties == {"stood_down_by": "alice", "reason": "LIGO"}


# --- skymaps -------------------------------------------------------------------------------------

def multi_order_fits(uniq, density, **cards):
    """A multi-order map's FITS bytes."""
    table = fits.BinTableHDU.from_columns([
        fits.Column("UNIQ", "K", array=np.asarray(uniq, dtype=np.int64)),
        fits.Column("PROBDENSITY", "D", array=np.asarray(density, dtype=float))])
    table.header.update({"PIXTYPE": "HEALPIX", "ORDERING": "NUNIQ", "INDXSCHM": "EXPLICIT",
                         **cards})
    with io.BytesIO() as stream:
        fits.HDUList([fits.PrimaryHDU(), table]).writeto(stream)
        return stream.getvalue()


def uniform_uniq(order=ORDER):
    """Every pixel of *order*, and the density of a uniform map."""
    pixels = 12 * 4 ** order
    return 4 * 4 ** order + np.arange(pixels), np.full(pixels, 1 / (4 * math.pi))


def read_refusal(data):
    with pytest.raises(ValueError) as caught:
        Skymap.read(data)
    return str(caught.value)


def test_a_distmean_card_that_is_not_a_number_is_an_unknown_distance_and_said(caplog):
    # The map is good; Max Distance then takes the source as one of unknown distance.
    skymap = Skymap.read(multi_order_fits(*uniform_uniq(), DISTMEAN="unknown"))
    assert "DISTMEAN" not in skymap.header
    assert "DISTMEAN header card is 'unknown', not a distance" in caplog.text


def test_a_numeric_distmean_is_kept():
    assert Skymap.read(multi_order_fits(*uniform_uniq(), DISTMEAN=40.5)).header["DISTMEAN"] == 40.5


def test_a_uniq_given_twice_is_refused_naming_uniq():
    uniq, density = uniform_uniq()
    # The map's probability then adds up to 1 (one pixel fewer), but one pixel counts twice.
    uniq[1] = uniq[0]
    message = read_refusal(multi_order_fits(uniq, density * 48 / 47))
    assert "UNIQ" in message and f"given more than once, the first {uniq[0]}" in message


def test_a_pixel_inside_another_is_refused_naming_both():
    uniq, density = uniform_uniq()
    inner = 4 * 4 ** (ORDER + 1) + 4 * 5     # the first child of order-1 pixel 5
    message = read_refusal(multi_order_fits(np.append(uniq, inner), np.append(density, 0.0)))
    assert f"UNIQ: 1 pixel(s) inside another, the first {inner} inside {uniq[5]}" in message


@pytest.mark.parametrize("wrong", [2 ** 62, 3, 0, -8])
def test_a_uniq_out_of_range_is_refused_naming_it(wrong):
    uniq, density = uniform_uniq()
    message = read_refusal(multi_order_fits(np.append(uniq, wrong), np.append(density, 0.0)))
    assert "UNIQ" in message and f"the first {wrong};" in message and "from 4 to" in message


def test_a_nan_density_in_a_multi_order_map_holds_no_probability_as_in_a_flat_map():
    uniq, density = uniform_uniq()
    density *= 48 / 47
    density[7] = np.nan
    skymap = Skymap.read(multi_order_fits(uniq, density))
    assert skymap.probability[7] == 0 and skymap.probability.sum() == pytest.approx(1)
    flat = np.full(48, 1 / 47)
    flat[7] = np.nan
    assert Skymap.read(flat_fits(flat)).flat(2)[7] == 0


def flat_map_with(columns, **cards):
    table = fits.BinTableHDU.from_columns([fits.Column(name, "D", array=values)
                                           for name, values in columns.items()])
    table.header.update({"PIXTYPE": "HEALPIX", "ORDERING": "NESTED", "NSIDE": 2,
                         "INDXSCHM": "IMPLICIT", **cards})
    with io.BytesIO() as stream:
        fits.HDUList([fits.PrimaryHDU(), table]).writeto(stream)
        return stream.getvalue()


def test_a_flat_map_without_a_prob_column_is_refused_naming_the_columns_found():
    message = read_refusal(flat_map_with({"DISTMU": np.full(48, 400.0),
                                          "DISTSIGMA": np.full(48, 100.0)}))
    assert "without a probability column (PROB or PROBABILITY)" in message
    assert "DISTMU, DISTSIGMA" in message


def test_a_flat_map_with_its_probability_in_a_later_probability_column_is_read():
    skymap = Skymap.read(flat_map_with({"SIGNIFICANCE": np.full(48, 5.0),
                                        "PROBABILITY": np.full(48, 1 / 48)}))
    assert skymap.flat(2) == pytest.approx(np.full(48, 1 / 48))


@pytest.mark.parametrize("nside", ["abc", "2.5x"])
def test_a_flat_map_whose_nside_is_no_number_is_refused_naming_nside(nside):
    message = read_refusal(flat_map_with({"PROB": np.full(48, 1 / 48)}, NSIDE=nside))
    assert f"NSIDE header card is {nside!r}, not a whole number" in message


# --- Credible Level and camera fields ------------------------------------------------------------

def test_the_docs_say_camera_fields_are_centred_in_the_99_percent_region_whatever_the_level():
    # Camera fields are chosen for the probability they enclose, their centres in the map's
    # 99 % region; Credible Level sets the area Max Area is compared with and the galaxies'
    # volume. The setting's own description must not promise more.
    alerts = " ".join(DOCS.joinpath("alerts.md").read_text(encoding="utf-8").split())
    assert f"{CANDIDATE_LEVEL:.0%}".replace("%", " %") + " credible region" in alerts
    assert "whatever `Credible Level`" in alerts
    description = config.SCHEMA["Alerts"]["Credible Level"].doc
    assert "targets lie in this credible region" not in description
    assert "Max Area" in description and "galaxies" in description
