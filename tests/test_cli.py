"""The `toros` command, run as a user runs it."""

import getpass
import json
import os
import re
import subprocess
import sys
import xmlrpc.client

import pytest

from observatory import ended
from torosmanager.config import SERVICES
from torosmanager.console import table

TOROS = os.path.join(os.path.dirname(sys.executable), "toros")


def toros(site, *arguments, stdin=None):
    return subprocess.run([TOROS, "--config", site.config_path, *arguments], input=stdin,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def orders_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("orders") / "night.yaml"
    path.write_text("""\
- ID: cli-1
  WOType: Observation
  Datetime: 2026-11-21T23:00:00.5
  User: Main Module
  # the manual's RA 23.1 is degrees: '01:32:24' in hours ('23:06:00' would be 346.5°)
  RA: "01:32:24"
  Dec: "+13:12:00"
  Filter: I
  Exposure Time: 30.0
  Calibration Frames: "Yes"
- ID: cli-2
  WOType: Dome
  Blink01: true
""")
    return path


def test_submit_a_yaml_list_prints_a_receipt_table(running, orders_file):
    result = toros(running, "submit", str(orders_file))
    assert result.returncode == 0, result.stderr
    header, rule, *rows = result.stdout.splitlines()
    assert header.split() == ["ID", "WOType", "Status", "Priority", "Message"]
    assert [row.split()[0] for row in rows] == ["cli-1", "cli-2"]
    status = running.proxy("scheduler").front_desk({"WOType": "Status", "ID": "cli-1"})
    assert status["Work Order"]["Datetime"] == "2026-11-21T23:00:00.500Z"


def test_unquoted_sexagesimal_coordinates_and_ids_in_yaml_mean_what_they_say(running, tmp_path):
    # YAML 1.1 reads 5:00 as 300 (base 60) and 007 as 7 (octal): the telescope once slewed
    # to RA 300°, Dec +60° for this order.
    path = tmp_path / "short.yaml"
    path.write_text("WOType: Observation\nID: 007\nRA: 5:00\nDec: 1:00\nFilter: I\n"
                    "Exposure Time: 5\nNot Before: 2026-11-21T23:00:00\n")
    result = toros(running, "submit", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    order = running.proxy("scheduler").front_desk({"WOType": "Status", "ID": "007"})["Work Order"]
    assert (order["RA"], order["Dec"], order["Not Before"]) == (
        75.0, 1.0, "2026-11-21T23:00:00.000Z")


def test_submit_json_from_stdin_to_a_chosen_daemon(running):
    order = {"ID": "cli-3", "WOType": "Dome", "Park": True}
    result = toros(running, "submit", "-", "--to", "dome", stdin=json.dumps(order))
    assert result.returncode == 0 and "cli-3" in result.stdout
    assert running.proxy("dome").front_desk({"WOType": "Status", "ID": "cli-3"})


def test_a_refused_order_is_shown_and_the_exit_status_is_1(running, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"ID": "cli-bad", "WOType": "Observation", "RA": 999,
                                 "Dec": 0, "Filter": "I", "Exposure Time": 1}]))
    result = toros(running, "submit", str(path))
    assert result.returncode == 1
    assert "refused" in result.stdout and "'RA': received 999" in result.stdout


def test_status_of_an_order_shows_its_history(running, orders_file):
    toros(running, "submit", str(orders_file))
    ended(running.proxy("scheduler"), "cli-1", "done")
    result = toros(running, "status", "cli-1")
    assert result.returncode == 0
    assert "Status:           done" in result.stdout
    assert "History:" in result.stdout and "accepted" in result.stdout


def test_status_without_id_is_the_daemons_health(running):
    result = toros(running, "status", "--to", "telescope")
    assert result.returncode == 0 and "Service:   telescope" in result.stdout
    # What the operations guide says it shows: the Earth-rotation table's age, each daemon's
    # own fields; the scheduler's plan, in short.
    assert re.search(r"^Earth Rotation: IERS-A table .* measured until ", result.stdout, re.M), \
        result.stdout
    assert re.search(r"^Hand-offs Pending: 0$", result.stdout, re.M), result.stdout
    scheduler = toros(running, "status")
    assert re.search(r"^Plan: +(Night .* UTC|The scheduler has not planned yet\.) .*\d+ planned, "
                     r"\d+ not \(toros plan\)$", scheduler.stdout, re.M), scheduler.stdout


def test_status_shows_nested_values_as_indented_lines_not_python_dicts(running):
    """A device's state, the journal, a daemon's limits were printed as Python's repr of a
    dict ("Journal: {'File': '/var/lib/toros/dome.sqlite3', 'Free MB': 83994.2}") and lists
    as "['Dome', 'Heartbeat']"."""
    result = toros(running, "status", "--to", "dome")
    assert result.returncode == 0, result.stderr
    assert "{'" not in result.stdout and "['" not in result.stdout, result.stdout
    assert re.search(r"^Journal:\n  File: .*dome\.sqlite3\n  Free MB: [\d.]+$", result.stdout,
                     re.M), result.stdout
    assert re.search(r"^Device: +Enclosure:\n    Shutter: \w+$", result.stdout, re.M)
    assert re.search(r"^Takes: Dome, Heartbeat$", result.stdout, re.M)


@pytest.mark.parametrize("command", ["demo", "passwd", "orientation"])
def test_a_command_that_reads_no_configuration_says_config_is_not_read(command):
    """`toros demo --help` offered `--config PATH  configuration file (default: ...)`, which
    the demo, making its own, never reads."""
    result = subprocess.run([TOROS, command, "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    assert re.search(r"--config PATH +not read: this command reads no configuration file$",
                     result.stdout, re.M), result.stdout


def test_cancel(running):
    toros(running, "submit", "-", "--to", "telescope",
          stdin=json.dumps({"ID": "cli-4", "WOType": "Observation", "RA": 23.1, "Dec": 13.2,
                            "Filter": "V", "Exposure Time": 3600}))
    result = toros(running, "cancel", "cli-4", "--to", "telescope")
    assert result.returncode == 0 and "cancelled" in result.stdout
    # In the name of whoever ran it (it was "cancelled by unknown"):
    history = toros(running, "status", "cli-4", "--to", "telescope").stdout
    assert f"cancelled by {getpass.getuser()}" in history, history
    again = toros(running, "cancel", "cli-4", "--to", "telescope")
    assert again.returncode == 1 and "already cancelled" in again.stderr


def test_services_lists_all_five(running):
    result = toros(running, "services")
    assert result.returncode == 0
    for service in SERVICES:
        line = next(line for line in result.stdout.splitlines() if line.startswith(service))
        assert "yes" in line.split() and running.url(service) in line


def test_services_says_which_daemon_does_not_answer(site):
    site.start("dome")
    result = toros(site, "services")
    assert result.returncode == 1
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[2:]}
    assert "no: Connection refused" in lines["telescope"]
    assert " yes " in lines["dome"]


def test_the_configuration_may_be_named_after_the_command_too(site):
    """`toros backup DIR --config FILE` was "unrecognized arguments"."""
    result = subprocess.run([TOROS, "status", "--config", str(site.config_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "the scheduler daemon does not answer at" in result.stderr
    assert result.stderr.rstrip().endswith(f"; configuration: {site.config_path})")


def test_an_unreachable_daemon_is_explained(site):
    result = toros(site, "status")
    assert result.returncode == 1
    assert "the scheduler daemon does not answer at" in result.stderr
    assert "(is it running? `systemctl status scheduler`;" in result.stderr
    # The file it read, not the default one.
    assert result.stderr.rstrip().endswith(f"; configuration: {site.config_path})")


def test_no_command_is_a_wrong_command_line_exit_2_with_the_usage_on_stderr():
    result = subprocess.run([TOROS], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("usage: toros")


def test_a_reader_that_goes_away_ends_the_output_without_a_traceback(running):
    # `toros services | head -1`: the pipe is closed after the first line.
    command = subprocess.Popen([TOROS, "--config", running.config_path, "services"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    command.stdout.close()
    assert command.wait(timeout=60) == 1
    assert b"Traceback" not in command.stderr.read()
    command.stderr.close()


#: A ``sitecustomize`` that makes the import of the module named in ``$INTERRUPT_AT`` raise
#: KeyboardInterrupt, as a Ctrl-C while that module loads would.
CTRL_C_AT_IMPORT = """\
import os, sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == os.environ["INTERRUPT_AT"]:
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, CtrlC())
"""


@pytest.mark.parametrize("module, command", [
    ("torosmanager.commands", "services"),  # the command's own modules, before main() runs
    ("astropy.config", "iers"),             # astropy, set up by main() before the command
])
def test_ctrl_c_while_the_command_loads_ends_it_quietly_exit_130(tmp_path, module, command):
    (tmp_path / "sitecustomize.py").write_text(CTRL_C_AT_IMPORT)
    environment = dict(os.environ, PYTHONPATH=str(tmp_path), INTERRUPT_AT=module)
    result = subprocess.run([sys.executable, TOROS, command], capture_output=True, text=True,
                            timeout=60, env=environment)
    assert result.returncode == 130, result.stderr
    assert result.stderr == "\n" and result.stdout == ""


def test_a_bad_config_is_exit_78(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("Nonsense: 1\n")
    result = subprocess.run([TOROS, "--config", str(path), "services"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 78 and "unknown key 'Nonsense'" in result.stderr


def test_a_file_that_is_not_orders(running, tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("just a string\n")
    result = toros(running, "submit", str(path))
    assert result.returncode == 1 and "work order 1: expected a mapping of keys to values; " \
        "got 'just a string'" in result.stderr


def test_a_key_given_twice_in_an_order_is_refused_before_anything_is_sent(running, tmp_path):
    # JSON and YAML keep the last: another order would go than the one the file shows first.
    path = tmp_path / "twice.json"
    path.write_text('{"ID": "twice-1", "WOType": "Dome", "Park": true, "ID": "twice-2"}')
    result = toros(running, "submit", str(path))
    assert result.returncode == 1
    assert "the key 'ID' is given twice in one work order" in result.stderr
    path = tmp_path / "twice.yaml"
    path.write_text("ID: twice-1\nWOType: Dome\nPark: true\nID: twice-2\n")
    result = toros(running, "submit", str(path))
    assert result.returncode == 1 and "the key 'ID' is given twice, on lines 1 and 4" \
        in result.stderr
    for order_id in ("twice-1", "twice-2"):
        with pytest.raises(xmlrpc.client.Fault, match="has no work order with this ID"):
            running.proxy("dome").front_desk({"WOType": "Status", "ID": order_id})


@pytest.mark.parametrize("text, message", [
    ("WOType: Observation\nExposure Time: 99999999999\n",
     "work order 1: 'Exposure Time' cannot be sent over XML-RPC: int exceeds XML-RPC limits "
     "(received 99999999999)"),
    ("- WOType: Status\n- {WOType: Status, 1: 2}\n", "work order 2: the key 1 is not text"),
    ("WOType: Status\nTags: !!set {a: null}\n",
     "work order 1: 'Tags' cannot be sent over XML-RPC: cannot marshal <class 'set'> objects"),
])
def test_an_order_xml_rpc_cannot_carry_is_named_before_anything_is_sent(running, tmp_path,
                                                                        text, message):
    """YAML can say what XML-RPC cannot carry: the client printed a traceback."""
    path = tmp_path / "orders.yaml"
    path.write_text(text)
    result = toros(running, "submit", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"toros: {path}: {message}")


def test_a_wotype_that_is_not_text_goes_to_the_scheduler_which_refuses_it(running, tmp_path):
    path = tmp_path / "order.json"
    path.write_text(json.dumps({"ID": "cli-list", "WOType": ["Dome"]}))
    result = toros(running, "submit", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cli-list" in result.stdout and "refused" in result.stdout


def test_a_value_not_set_is_an_empty_cell_not_the_word_none():
    # `toros alerts EVENT` showed an order without a Not Before as "None".
    lines = table([{"ID": "S1-1-01", "Not Before": None, "Probability": 0.25}],
                  ("ID", "Not Before", "Probability")).splitlines()
    assert "None" not in lines[2]
    assert lines[2].split() == ["S1-1-01", "0.25"]


@pytest.mark.parametrize("platform, status, restart", [
    ("linux", "systemctl status dome", "sudo systemctl restart toros.target"),
    ("darwin", "sudo launchctl print system/org.toros.dome",
     "sudo launchctl kickstart -k system/org.toros.<service>, for each"),
])
def test_the_commands_suggested_are_the_service_managers_of_the_system(monkeypatch, platform,
                                                                       status, restart):
    """On macOS the daemons are launchd's: `systemctl` there is "command not found"."""
    from torosmanager.commands.service_manager import restart_command, status_command

    monkeypatch.setattr(sys, "platform", platform)
    assert (status_command("dome"), restart_command()) == (status, restart)
