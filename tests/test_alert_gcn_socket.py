"""GCN Classic's 160-byte socket notices read into an Alert: real packets GCN published, packets
carrying the numbers of real VOEvents (both readers must agree), and broken packets refused with
a message naming what is wrong."""

import math
import struct
from datetime import datetime, timedelta, timezone

import pytest
from alert_fixtures import alert_file
from astropy.time import Time

from torosmanager.alerts.formats import FORMATS, AlertFormatError, gcn_socket, read
from torosmanager.alerts.formats.gcn_socket import (BURST_DEC, BURST_ERROR, BURST_RA, BURST_SOD,
                                                    BURST_TJD, IMALIVE, MAX_TJD, MISC,
                                                    PKT_SERNUM, PKT_SOD, PKT_TYPE, TRIG_OBS_NUM,
                                                    TRIGGER_ID, packet_type, tjd_to_datetime)

#: The last field of a Swift packet: a newline (sock_pkt_def_doc: "always = \n").
NEWLINE_TERMINATOR = 10

# Real notices, the 40 integers of GCN's own specimens (nasa-gcn/gcn-classic-to-json,
# gcn_classic_to_json/notices/<type>/example.bin). GCN's JSON conversion of the Swift one
# (example.json there) says: trigger_time 2024-05-11T18:06:53.220Z, ra 336.6645,
# dec 8.5135, ra_dec_error 0.05.
SWIFT_BAT_1227767 = (
    61, 7, 0, 6524100, 1227767, 20441, 6521322, 3366645, 85135, 7538, 281, 500, -17354, 2838,
    512, 0, -72991973, 262, 536870915, 0, 852, 1489, 74677, 6518257, 2400, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 16777217, 65282, 223, 10)
GBM_FLT_737238260 = (
    111, 394, 0, 0, 737238260, 20442, 7345528, 2384000, -455667, 162, 0, 300500, 15400, 10000,
    32, 0, 0, 32, 0, 16777216, 48, 280, 3, 16711681, 0, 0, 48, 0, 0, 0, 0, 240512, 850, 0, 0, 0,
    0, 19419, 1201, 0)
GBM_GND_736967879 = (
    112, 44, 0, 0, 736967879, 20439, 6227417, 2402000, 150100, 0, 0, 141200, 14700, 8700, 4096,
    0, -84783930, 0, 0, 1073741824, 57, 67, 4173, 0, 4, 1, 44032, 279965, 84208, -66832, -24716,
    240509, 721, 0, 0, 0, 0, 0, 0, 0)
GBM_FIN_737374806 = (
    115, 33, 0, 0, 737374806, 20444, 3720180, 1648400, 241300, 0, 0, 46700, 24200, 3000, 0, 0,
    0, 0, 134217729, 1073741824, 0, 0, 41731, 0, 0, 0, 44032, 279965, 0, 0, 0, 240514, 431, 0,
    0, 0, 0, 0, 0, 0)


def utc(*parts):
    return datetime(*parts, tzinfo=timezone.utc)


def pack(values):
    return struct.pack(">40i", *values)


def packet(**fields):
    """A notice with the named fields set (indices as gcn_socket names them), the rest 0."""
    values = [0] * 40
    values[39] = NEWLINE_TERMINATOR
    for name, value in fields.items():
        values[getattr(gcn_socket, name.upper())] = value
    return pack(values)


def swift(**fields):
    """A plausible Swift BAT position (GRB 220907's numbers), *fields* changed."""
    values = {"pkt_type": 61, "pkt_sernum": 1, "pkt_sod": 5074000, "trig_obs_num": 1123129,
              "burst_tjd": 19829, "burst_sod": 5072576, "burst_ra": 2688700,
              "burst_dec": -203153, "burst_error": 500}
    return packet(**{**values, **fields})


def voevent_packet(voevent_name, payload=None):
    """A binary notice carrying the numbers of a real VOEvent of GCN (or of *payload*, that
    VOEvent changed), and the VOEvent's Alert.

    The numbers are taken from the VOEvent's own Params (Packet_Type, Pkt_Ser_Num, TrigID,
    Burst_TJD, Burst_SOD, Trigger_ID or Soln_Status, Misc_flags), its position and its Who/Date,
    scaled as sock_pkt_def_doc says.
    """
    alert = read("voevent", payload or alert_file(voevent_name).read_bytes())
    params = alert.properties["params"]
    flags = params.get("Soln_Status", params.get("Trigger_ID"))
    issued_sod = alert.issued - alert.issued.replace(hour=0, minute=0, second=0, microsecond=0)
    values = [0] * 40
    values[PKT_TYPE] = int(params["Packet_Type"])
    values[PKT_SERNUM] = int(params["Pkt_Ser_Num"])
    values[PKT_SOD] = round(issued_sod.total_seconds() * 100)
    values[TRIG_OBS_NUM] = int(params["TrigID"])
    values[BURST_TJD] = int(params["Burst_TJD"])
    values[BURST_SOD] = round(float(params["Burst_SOD"]) * 100)
    values[BURST_RA] = round(alert.ra * 10_000)
    values[BURST_DEC] = round(alert.dec * 10_000)
    values[BURST_ERROR] = round(alert.properties.get("statistical_error", alert.error_radius)
                                * 10_000)
    values[TRIGGER_ID] = int(flags, 16)
    values[MISC] = struct.unpack(">i", struct.pack(">I", int(params["Misc_flags"], 16)))[0]
    values[39] = NEWLINE_TERMINATOR
    return pack(values), alert


def assert_same_event(binary, voevent):
    assert binary.event_id == voevent.event_id
    assert binary.serial == voevent.serial
    assert (binary.kind, binary.test) == (voevent.kind, voevent.test)
    assert (binary.ra, binary.dec) == (voevent.ra, voevent.dec)
    assert binary.properties["event_time"] == voevent.properties["event_time"]
    assert binary.issued == voevent.issued
    assert binary.properties["Packet_Type"] == voevent.properties["Packet_Type"]


# --- real packets ------------------------------------------------------------------------------

def test_a_real_swift_bat_position_reads_as_gcn_itself_converts_it():
    alert = read("gcn_socket", pack(SWIFT_BAT_1227767))
    assert (alert.event_id, alert.kind, alert.source, alert.test) == (
        "Swift-1227767", "grb", "Swift BAT", False)
    assert (alert.alert_type, alert.serial) == ("PRELIMINARY", 7)
    assert alert.properties["event_time"] == utc(2024, 5, 11, 18, 6, 53, 220000)
    assert (alert.ra, alert.dec, alert.error_radius) == (336.6645, 8.5135, 0.05)
    assert alert.issued == utc(2024, 5, 11, 18, 7, 21)          # pkt_sod 6524100
    assert alert.properties["containment_probability"] == 0.9
    assert alert.properties["segment"] == 0
    assert alert.properties["trigger_flags"] == 0x20000003
    assert alert.properties["systematic_included"] is False


def test_a_trigger_number_is_its_missions_whatever_the_format():
    """Swift and Fermi number their triggers each on its own: a Fermi trigger with a Swift
    trigger's number is another event (before, both were event "1227767", and a retraction of
    one cancelled the other's orders); a GCN JSON notice of the Swift trigger is the same event
    as its socket packet."""
    swift = read("gcn_socket", pack(SWIFT_BAT_1227767))
    fermi_values = list(GBM_FLT_737238260)
    fermi_values[TRIG_OBS_NUM] = SWIFT_BAT_1227767[TRIG_OBS_NUM]
    fermi = read("gcn_socket", pack(fermi_values))
    as_json = read("gcn_json", {
        "$schema": "https://gcn.nasa.gov/schema/v4.4.0/gcn/notices/swift/bat/guano.schema.json",
        "mission": "SWIFT", "trigger_id": 1227767, "trigger_time": "2024-05-11T18:06:53.220Z",
        "ra": 336.6645, "dec": 8.5135, "ra_dec_error": 0.05})
    assert (swift.event_id, fermi.event_id, as_json.event_id) == (
        "Swift-1227767", "Fermi-1227767", "Swift-1227767")


def test_real_fermi_gbm_errors_are_in_ten_thousandths_of_a_degree():
    flight = read("gcn_socket", pack(GBM_FLT_737238260))
    ground = read("gcn_socket", pack(GBM_GND_736967879))
    final = read("gcn_socket", pack(GBM_FIN_737374806))
    # 300500, 141200, 46700: 30.05, 14.12 and 4.67 degrees (centi-degrees would exceed 180).
    assert [alert.properties["statistical_error"] for alert in (flight, ground, final)] == [
        30.05, 14.12, 4.67]
    assert (final.ra, final.dec) == (164.84, 24.13)
    assert (flight.ra, flight.dec) == (238.4, -45.5667)
    assert [alert.event_id for alert in (flight, ground, final)] == [
        "Fermi-737238260", "Fermi-736967879", "Fermi-737374806"]
    assert [alert.alert_type for alert in (flight, ground, final)] == [
        "PRELIMINARY", "UPDATE", "UPDATE"]
    assert {alert.source for alert in (flight, ground, final)} == {"Fermi GBM"}
    assert final.properties["event_time"] == utc(2024, 5, 14, 10, 20, 1, 800000)
    # GCN leaves pkt_sod at 0 in these: the issue time is then the burst's.
    assert final.issued == final.properties["event_time"]


def test_gbm_errors_are_statistical_plus_systematic_in_quadrature():
    flight = read("gcn_socket", pack(GBM_FLT_737238260))
    ground = read("gcn_socket", pack(GBM_GND_736967879))
    final = read("gcn_socket", pack(GBM_FIN_737374806))
    assert flight.error_radius == 30.05          # a flight position includes its systematic
    assert flight.properties["systematic_error"] is None
    assert ground.error_radius == pytest.approx(math.hypot(14.12, 3.7))
    assert final.error_radius == pytest.approx(math.hypot(4.67, 4.1))
    assert all(alert.properties["systematic_included"] for alert in (flight, ground, final))
    assert {alert.properties["containment_probability"] for alert in (flight, ground, final)} \
        == {0.68}


# --- the same event as a VOEvent ---------------------------------------------------------------

def test_a_swift_packet_and_the_voevent_of_the_same_event_agree():
    binary_packet, voevent = voevent_packet("swift_grb_gcn.xml")
    binary = read("gcn_socket", binary_packet)
    assert_same_event(binary, voevent)
    assert binary.error_radius == voevent.error_radius == 0.05
    assert binary.source == "Swift BAT" and voevent.source == "Swift Satellite, BAT Instrument"
    assert binary.properties["event_time"] == utc(2022, 9, 7, 14, 5, 25, 760000)


def test_a_fermi_flight_position_and_its_voevent_agree():
    binary_packet, voevent = voevent_packet("fermi_grb_gcn.xml")
    binary = read("gcn_socket", binary_packet)
    assert_same_event(binary, voevent)
    assert binary.error_radius == voevent.error_radius == 5.6
    assert (binary.event_id, binary.serial) == ("Fermi-548848711", 15)
    assert binary.issued == utc(2018, 5, 24, 18, 35, 45)


def test_grb_170817a_ground_position_agrees_with_its_voevent_plus_the_systematic():
    binary_packet, voevent = voevent_packet("externaltrigger_original_data.xml")
    binary = read("gcn_socket", binary_packet)
    assert_same_event(binary, voevent)
    assert (binary.ra, binary.dec) == (186.62, -48.84)
    assert binary.properties["statistical_error"] == voevent.properties["statistical_error"]
    assert binary.properties["statistical_error"] == 17.45
    assert binary.error_radius == voevent.error_radius == pytest.approx(math.hypot(17.45, 3.7))
    assert binary.properties["event_time"] == utc(2017, 8, 17, 12, 41, 6, 470000)
    assert binary.alert_type == "UPDATE"


# --- flags, serials, times -----------------------------------------------------------------------

def test_test_notice_types_and_the_test_submission_bit_make_a_test_alert():
    assert read("gcn_socket", swift(pkt_type=82)).test
    assert read("gcn_socket", swift(trigger_id=1 << 30)).test
    assert not read("gcn_socket", swift(trigger_id=0x20000003)).test
    gbm_test = read("gcn_socket", packet(pkt_type=119, trig_obs_num=99999, burst_tjd=20443,
                                         burst_sod=4349700, burst_ra=360000,
                                         burst_dec=350000, burst_error=58000))
    assert gbm_test.test and gbm_test.source == "Fermi GBM"


def test_a_definitely_not_a_grb_packet_retracts_its_event():
    assert read("gcn_socket", swift(trigger_id=0x20)).alert_type == "RETRACTION"
    assert read("gcn_socket", swift(trigger_id=0x3)).alert_type == "PRELIMINARY"


def test_the_swift_observation_segment_is_not_part_of_the_trigger_number():
    alert = read("gcn_socket", swift(trig_obs_num=(2 << 24) | 1123129))
    assert alert.event_id == "Swift-1123129" and alert.properties["segment"] == 2


def test_a_packet_made_after_midnight_is_issued_the_next_day():
    late_burst = swift(burst_sod=8639000, pkt_sod=3000)       # 23:59:50, then 00:00:30
    assert read("gcn_socket", late_burst).issued == utc(2022, 9, 8, 0, 0, 30)
    skewed = swift(burst_sod=5072576, pkt_sod=5072000)         # 5.76 s "before" the burst
    assert read("gcn_socket", skewed).issued == utc(2022, 9, 7, 14, 5, 20)


def test_tjd_is_the_julian_date_minus_2440000_5():
    assert tjd_to_datetime(0, 0) == utc(1968, 5, 24)
    for tjd in (0, 13370, 20441):
        astropy_moment = Time(tjd + 2440000.5, format="jd", scale="utc").to_datetime(
            timezone=timezone.utc)
        assert tjd_to_datetime(tjd, 0) == astropy_moment
    assert tjd_to_datetime(19829, 5072576) - tjd_to_datetime(19829, 0) == timedelta(
        seconds=50725.76)


def test_ra_360_is_ra_0():
    assert read("gcn_socket", swift(burst_ra=3600000)).ra == 0.0


def test_gcn_socket_is_a_registered_format():
    assert "gcn_socket" in FORMATS


# --- what is not an alert, and what is broken ---------------------------------------------------

def test_an_imalive_is_told_apart_from_an_error():
    imalive = packet(pkt_type=IMALIVE, pkt_sod=4350500)
    assert packet_type(imalive) == IMALIVE == 3
    with pytest.raises(AlertFormatError, match=r"3 \(IMALIVE\) is GCN's heartbeat"):
        read("gcn_socket", imalive)
    assert packet_type(swift()) == 61


def test_a_notice_type_not_read_here_is_named():
    with pytest.raises(AlertFormatError) as refused:
        read("gcn_socket", swift(pkt_type=110))
    assert refused.value.format_name == "gcn_socket"
    assert "110 (FERMI_GBM_ALERT) is not a position notice" in str(refused.value)
    assert "61 (SWIFT_BAT_GRB_POS_ACK)" in str(refused.value)


@pytest.mark.parametrize("payload, problem, received", [
    (b"\0" * 159, "is 160 bytes, not 159", ""),
    (b"\0" * 161, "is 160 bytes, not 161", ""),
    ("a" * 160, "must be bytes, not str", "aaaa"),
    (swift(burst_ra=3600001), "burst_ra [7] must be within [0, 360]", "3600001"),
    (swift(burst_dec=-900001), "burst_dec [8] must be within [-90, 90]", "-900001"),
    (swift(burst_error=-1), "burst_error [11] must be within [0, 180]", "-1"),
    (swift(burst_sod=8640100 + 100), "burst_sod [6] must be within", "8640200"),
    (swift(pkt_sod=-5), "pkt_sod [3] must be within", "-5"),
    (swift(burst_tjd=0), f"burst_tjd [5] must be a day number from 1 to {MAX_TJD}", "0"),
    # a corrupt packet: a day past what a date can hold (it was an OverflowError)
    (swift(burst_tjd=2 ** 31 - 1), "burst_tjd [5] must be a day number", "2147483647"),
    (swift(burst_tjd=MAX_TJD + 1), "burst_tjd [5] must be a day number", str(MAX_TJD + 1)),
    (swift(trig_obs_num=0), "trigger number [4] must be positive", "0"),
    (swift(pkt_sernum=-1), "pkt_sernum [1] must be >= 0", "-1"),
])
def test_a_broken_packet_is_refused_naming_the_field_and_value(payload, problem, received):
    with pytest.raises(AlertFormatError) as refused:
        read("gcn_socket", payload)
    assert refused.value.format_name == "gcn_socket"
    assert problem in refused.value.problem
    assert received in refused.value.received


def test_the_last_day_read_holds_a_packet_made_the_day_after_its_burst():
    alert = read("gcn_socket", swift(burst_tjd=MAX_TJD, burst_sod=8640099, pkt_sod=100))
    assert alert.issued.year == 9999 and alert.issued > alert.properties["event_time"]


def test_packet_type_refuses_a_packet_of_the_wrong_size():
    with pytest.raises(AlertFormatError, match="160 bytes, not 40"):
        packet_type(b"\0" * 40)
