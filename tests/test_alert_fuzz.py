"""Whatever arrives, an alert reader gives an Alert or refuses it with AlertFormatError (which
says what is wrong), and the skymap reader a Skymap or a ValueError (or the OSError of a file
that cannot be read); no other exception escapes to fail the order as an internal error.

Real alerts, changed one field or element at a time, random GCN socket packets of every type,
and a real skymap cut or corrupted anywhere: a corrupt packet on the socket, a producer's new
field type, a truncated element, a download cut short.
"""

import copy
import gzip
import json
import random

import pytest
from alert_fixtures import FOLLOWUP_ADVOCATE, alert_file
from lxml import etree

from torosmanager.alerts.formats import AlertFormatError, read
from torosmanager.alerts.formats.gcn_socket import NOTICE_TYPES, PACKET, TYPE_NAMES
from torosmanager.alerts.skymap import Skymap

SEED = 20261204
#: What a field or an element's text and attributes are changed to.
ODD_VALUES = [None, 0, -1, 1.5, 1e308, -1e308, "", "x", "NaN", "inf", [], {}, True, [1, 2],
              {"a": 1}, "2024-13-45T99:00:00Z", "9" * 400]
ODD_TEXTS = ["", "x", "-1", "1e400", "nan", "inf", "400", "-100", "2017-99-99T00:00:00", "0",
             " ", "1,5"]
JSON_ALERTS = [("gcn_json", "kafka_alert_icecube_gold.json", None),
               ("gcn_json", "kafka_alert_icecube_retraction.json", None),
               ("gcn_json", "kafka_alert_einteinprobe.json", None),
               ("lvk_json", "S1234/files/S1234-1-earlywarning.json", FOLLOWUP_ADVOCATE),
               ("lvk_json", "S1234/files/S1234-2-initial.json", FOLLOWUP_ADVOCATE),
               ("lvk_json", "S2469/files/S2469-1-initial.json", FOLLOWUP_ADVOCATE),
               ("lvk_json", "S3456/files/S3456-1-initial.json", FOLLOWUP_ADVOCATE)]
VOEVENTS = ["G298048-1-Initial.xml", "externaltrigger_original_data.xml", "swift_grb_gcn.xml",
            "fermi_grb_gcn.xml"]
#: Packets of each type; a field's values drawn half from field limits, half at random.
PACKETS_PER_TYPE = 3000
#: GRB 220907's Swift BAT position notice: pkt_sernum, pkt_sod, trig_obs_num, burst_tjd,
#: burst_sod, burst_ra, burst_dec, burst_error.
PLAUSIBLE_FIELDS = {1: 1, 3: 5074000, 4: 1123129, 5: 19829, 6: 5072576, 7: 2688700, 8: -203153,
                    11: 500}
#: Places a real skymap is cut at, and bytes of its gzip-compressed copy changed, at random.
SKYMAP_CUTS, SKYMAP_FLIPS = 40, 150
FIELD_LIMITS = [0, -1, 1, 2 ** 31 - 1, -2 ** 31, 3_600_000, 3_610_000, -910_000, 900_000,
                8_640_000, 8_640_001, 40_000, 99_999_999]


def read_or_refuse(format_name, payload):
    """The Alert, or None when refused; any other exception fails the test, naming it."""
    try:
        return read(format_name, payload)
    except AlertFormatError:
        return None


def paths(node, prefix=()):
    """The path of every value in a JSON document (the first three items of a list)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield prefix + (key,)
            yield from paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node[:3]):
            yield prefix + (index,)
            yield from paths(value, prefix + (index,))


@pytest.mark.parametrize("format_name, name, package", JSON_ALERTS,
                         ids=[name.rsplit("/", 1)[-1] for _, name, _ in JSON_ALERTS])
def test_a_json_alert_with_any_field_changed_or_removed(format_name, name, package):
    original = json.loads(alert_file(name, *(package,) if package else ()).read_text())
    if isinstance(original.get("event"), dict):
        original["event"].pop("skymap", None)  # read in test_alert_skymap; large to copy
    read, refused = 0, 0
    for path in list(paths(original)):
        for value in ODD_VALUES + [KeyError]:
            changed = copy.deepcopy(original)
            parent = changed
            for step in path[:-1]:
                parent = parent[step]
            if value is KeyError:
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
            if read_or_refuse(format_name, json.dumps(changed)) is None:
                refused += 1
            else:
                read += 1
    assert read and refused  # both happen: the changes reach the reader's checks


@pytest.mark.parametrize("name", VOEVENTS)
def test_a_voevent_with_any_element_changed_or_removed(name):
    original = alert_file(name).read_bytes()
    count = sum(1 for _ in etree.fromstring(original).iter())
    read, refused = 0, 0
    for index in range(count):
        for change in ["remove", "no text"] + [("attributes", text) for text in ODD_TEXTS] + \
                [("text", text) for text in ODD_TEXTS]:
            tree = etree.fromstring(original)
            element = list(tree.iter())[index]
            if change == "remove":
                if element.getparent() is None:
                    continue
                element.getparent().remove(element)
            elif change == "no text":
                element.text = None
            elif change[0] == "attributes":
                for key in element.attrib:
                    element.attrib[key] = change[1]
            else:
                element.text = change[1]
            if read_or_refuse("voevent", etree.tostring(tree)) is None:
                refused += 1
            else:
                read += 1
    assert read and refused


def test_socket_packets_of_every_type_with_random_fields():
    """A plausible packet (GRB 220907's Swift BAT position, each notice type in turn) with one
    to three of its 40 fields drawn at random, half of them at field limits."""
    rng = random.Random(SEED)
    plausible = [0] * (PACKET.size // 4)
    for index, value in PLAUSIBLE_FIELDS.items():
        plausible[index] = value
    read = 0
    for number in sorted(set(NOTICE_TYPES) | set(TYPE_NAMES)):
        for _ in range(PACKETS_PER_TYPE):
            fields = list(plausible)
            fields[0] = number
            for index in rng.sample(range(1, len(fields)), rng.randint(1, 3)):
                fields[index] = (rng.choice(FIELD_LIMITS) if rng.random() < 0.5 else
                                 rng.randint(-2 ** 31, 2 ** 31 - 1))
            read += read_or_refuse("gcn_socket", PACKET.pack(*fields)) is not None
    assert read  # the changes of fields the reader ignores leave a notice it reads


@pytest.mark.filterwarnings("ignore:File may have been truncated")  # astropy's, true here
def test_a_real_skymap_cut_or_corrupted_anywhere():
    rng = random.Random(SEED)
    original = alert_file("MS220722v_bayestar.multiorder.fits").read_bytes()
    compressed = gzip.compress(original)
    # Cut before the last 2,880-byte block: in the data, not in the padding after them.
    broken = [data[:rng.randrange(len(data) - 2880)] for data in (original, compressed)
              for _ in range(SKYMAP_CUTS)]
    for _ in range(SKYMAP_FLIPS):
        flipped = bytearray(compressed)
        flipped[rng.randrange(len(flipped))] ^= 0xFF
        broken.append(bytes(flipped))
    refused = 0
    for data in broken:
        try:
            Skymap.read(data)
        except (ValueError, OSError):
            refused += 1
    assert refused >= 2 * SKYMAP_CUTS  # every cut; a flip in the gzip's own header may be read
