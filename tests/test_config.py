"""Configuration: defaults in one place, and one clear message for anything wrong."""

import contextlib
import os
import pathlib
import re
import subprocess

import pytest
import yaml

from torosmanager.config import (SCHEMA, ConfigError, default_config, load_config,
                                 resolve_path, service_path)
from helpers_small_disk import remount, small_disk
from torosmanager.launcher import daemon_command

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "etc" / "toros" / "toros.conf.yaml"


def write(tmp_path, text):
    path = tmp_path / "toros.conf.yaml"
    path.write_text(text)
    return str(path)


def error_for(tmp_path, text):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return str(caught.value)


class TestTheShippedConfiguration:
    def test_it_states_every_default(self):
        assert load_config(str(EXAMPLE)) == default_config()

    def test_it_mentions_every_key(self):
        text = EXAMPLE.read_text()

        def keys(schema):
            for key, rule in schema.items():
                yield key
                if isinstance(rule, dict):
                    yield from keys(rule)

        missing = [key for key in keys(SCHEMA) if f"{key}:" not in text]
        assert not missing, f"not documented in {EXAMPLE}: {missing}"

    def test_the_manuals_keys_are_kept(self):
        config = default_config()
        assert set(config["Preprocessor Address"]) == {"HTTP", "IP", "Port"}
        assert {"File", "Log Level"} <= set(config["Logging"])
        assert "Database" in config


def test_an_empty_file_means_all_defaults_and_says_so(tmp_path, caplog):
    assert load_config(write(tmp_path, "# nothing but a comment\n")) == default_config()
    assert "holds no settings: every setting is its default" in caplog.text


@pytest.mark.parametrize("word, meant", [("yes", True), ("No", False), ("on", True),
                                         ("OFF", False)])
def test_a_yaml_1_1_boolean_in_a_boolean_setting_is_read_with_a_warning(tmp_path, caplog, word,
                                                                       meant):
    """Configurations written for PyYAML's YAML 1.1 (before 5a44226) said `Manage Dome: no`:
    read as the text 'no' since, every daemon refused to start after an upgrade."""
    config = load_config(write(tmp_path, f"Scheduler:\n  Manage Dome: {word}\n"))
    assert config["Scheduler"]["Manage Dome"] is meant
    assert (f"Scheduler → Manage Dome: {word!r} is read as {str(meant).lower()} for now; "
            f"write {str(meant).lower()}") in caplog.text


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path):
    # YAML keeps the last: the second Site put back the default latitude without a word.
    message = error_for(tmp_path, "Site:\n  Name: El Leoncito\n  Latitude: -31.8\n"
                                  "Dome: {}\nSite:\n  Name: El Leoncito\n")
    assert "the key 'Site' is given twice, on lines 1 and 5" in message
    assert "the key 'Port' is given twice" in error_for(
        tmp_path, "Dome Address:\n  Port: 8012\n  Port: 8013\n")


def test_a_file_not_in_utf8_is_refused_naming_the_line(tmp_path):
    path = tmp_path / "toros.conf.yaml"
    path.write_bytes("Site:\n  Name: C\u00f4te\n".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert str(caught.value) == (f"{path}: line 2: byte 0xf4 is not UTF-8; allowed: a file in "
                                 "UTF-8 (save it so from the editor, or iconv -f latin1 -t utf-8)")


@pytest.mark.parametrize("text", ["Server:\n  Users: {toros: [HunterPass99]}\n",
                                  "Alerts:\n  Kafka:\n    Client Secret: [HunterPass99]\n"])
def test_a_secret_is_never_shown_in_a_message(tmp_path, text):
    message = error_for(tmp_path, text)
    assert "HunterPass99" not in message
    assert "a dict (not shown: it holds a secret) is not allowed" in message or \
        "a list (not shown: it holds a secret) is not allowed" in message


def test_a_damaged_password_hash_is_refused_not_taken_for_a_password(tmp_path):
    message = error_for(tmp_path, "Server:\n  Users: {toros: 'scrypt$16384$8$1$garbage'}\n")
    assert "Server → Users: the entry of toros begins as a password hash but is not one" \
        in message and "garbage" not in message


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/", "http://:18212/",
                                 "http://127.0.0.1:abc/", "http://exa mple/", "https://",
                                 "http://127.0.0.1:0/"])
def test_an_address_url_needs_a_host_and_a_port_in_range(tmp_path, url):
    assert "a URL starting with http:// or https://, then a host and, if any, a port from 1 " \
        "to 65535" in error_for(tmp_path, f"Dome Address:\n  HTTP: '{url}'\n")


def test_defaults_are_safe():
    config = default_config()
    assert all(config[f"{name} Address"]["IP"] == "127.0.0.1"
               for name in ("Scheduler", "Telescope", "Dome", "Preprocessor"))
    assert config["Server"]["Allow Unauthenticated"] is False
    assert config["Clock"]["Mode"] == "real"


def test_the_slit_is_turned_at_half_the_lag_a_frame_waits_for(tmp_path):
    assert default_config()["Dome"]["Turn Lag"] == 1.5
    config = load_config(write(tmp_path, "Dome: {Follow Tolerance: 5}\n"))
    assert config["Dome"]["Turn Lag"] == 2.5


def test_http_is_derived_from_ip_and_port(tmp_path):
    config = load_config(write(tmp_path, "Dome Address: {Port: 9000}\n"))
    assert config["Dome Address"]["HTTP"] == "http://127.0.0.1:9000/"


def test_values_are_merged_over_defaults(tmp_path):
    config = load_config(write(tmp_path, "Site:\n  Name: Cordon Macon\n  Latitude: -24.62\n"))
    assert config["Site"]["Name"] == "Cordon Macon"
    assert config["Site"]["Latitude"] == -24.62
    assert config["Site"]["Longitude"] == default_config()["Site"]["Longitude"]


@pytest.mark.parametrize("text, expected", [
    ("Sight:\n  Name: x\n", "unknown key 'Sight'; allowed: 'Scheduler Address'"),
    ("Site:\n  Lat: 3\n", "unknown key 'Lat' in Site; allowed: 'Name', 'Latitude'"),
    ("Site:\n  Latitude: 91\n", "Site → Latitude: 91 is not allowed; allowed: a number from -90 to 90"),
    ("Dome Address:\n  Port: 70000\n", "Dome Address → Port: 70000 is not allowed; allowed: an integer from 1 to 65535"),
    ("Dome Address:\n  Port: '8012'\n", "Dome Address → Port: '8012' is not allowed"),
    ("Dome Address:\n  IP: localhost\n", "allowed: an IPv4 or IPv6 address"),
    ("Logging:\n  Log Level: LOUD\n", "allowed: one of 'DEBUG', 'INFO', 'WARNING', 'ERROR'"),
    ("Server:\n  Allow Unauthenticated: 'sometimes'\n", "allowed: true or false"),
    ("Site: 5\n", "Site must be a mapping of settings"),
    ("- a list\n", "the top level must be a mapping"),
    ("Site: {Name: [unclosed\n", "not valid YAML"),
    ("Clock:\n  Mode: simulated\n", "Clock → Start and Clock → Anchor are required"),
    # YAML 1.1 makes a datetime of it, and Python's "month must be in 1..12" named no key.
    ("Clock:\n  Start: 2026-13-01T00:00:00\n", "Clock → Start: '2026-13-01T00:00:00' is not "
     "allowed; allowed: an ISO 8601 UTC date and time"),
    # YAML 1.1 reads -97:30 as base 60, -5850, and 0644 as octal.
    ("Site:\n  Longitude: -97:30\n", "Site → Longitude: '-97:30' is not allowed"),
    ("Dome Address:\n  IP: 0.0.0.0\n", "is not a loopback address, so the daemon needs credentials"),
    ("Dome Address:\n  HTTP: dome-pc:8012\n", "a URL starting with http://"),
    ("Alerts:\n  Alert Types: [INITAL]\n", "Alerts → Alert Types: ['INITAL'] is not allowed; "
     "allowed: a list of EARLYWARNING, PRELIMINARY, INITIAL, UPDATE"),
    ("Alerts:\n  Galaxy Catalog:\n    Luminosity Weight: V\n", "allowed: one of 'none', 'B', 'K'"),
    # NaN compares false with any bound, so it passed every range; .inf means no number here.
    ("Server:\n  Request Timeout: .nan\n", "Server → Request Timeout: nan is not allowed; "
     "allowed: a number from 0.1 to 3600"),
    ("Alerts:\n  Max Distance: .inf\n", "Alerts → Max Distance: inf is not allowed; "
     "allowed: a number of at least 0"),
    ("Site:\n  Latitude: 1" + "0" * 400 + "\n", "allowed: a number from -90 to 90"),
    ("Dome:\n  Follow Tolerance: 2\n  Turn Lag: 2.5\n", "Dome → Turn Lag: 2.5 is not allowed; "
     "allowed: at most Dome → Follow Tolerance (2), or the telescope would wait"),
    # The dome would close between two heartbeats, all night.
    ("Dome:\n  Heartbeat Timeout: 30\n", "Dome → Heartbeat Timeout: 30 s is not allowed; "
     "allowed: more than Scheduler → Heartbeat Interval + Dome → Check Interval (70 s)"),
    # Found at start, not at the first night's every frame.
    ("Preprocessor:\n  Overscan: '[1025:1056,1:1024'\n", "Preprocessor → Overscan: "
     "'[1025:1056,1:1024' is not allowed; allowed: a FITS section"),
    ("Preprocessor:\n  Trim: '[0:100,1:100]'\n", "Preprocessor → Trim: '[0:100,1:100]' is "
     "not allowed"),
    # Found at start, not as the failure of every job.
    ("Preprocessor:\n  Executor: lcoal\n", "Preprocessor → Executor: 'lcoal' is not allowed; "
     "allowed: 'local', or a Dask scheduler's address such as tcp://10.0.0.5:8786"),
    # Orders sent while the Sun is up far enough for the dome to keep itself closed.
    ("Observing:\n  Sun Altitude: -3\n", "Observing → Sun Altitude: -3 is not allowed; "
     "allowed: at most Observing → Sun Altitude Limit (-6°), above which the dome closes"),
    # Relative to what? A service's working directory is /.
    ("Telescope:\n  Data Directory: relative/data\n", "Telescope → Data Directory: "
     "'relative/data' is not allowed; allowed: an absolute path"),
    # The telescope could not start, and the scheduler dispatched Observations to itself.
    ("Telescope Address:\n  Port: 8010\n", "Telescope Address → Port: 8010 is not allowed; "
     "allowed: a port none of the others on 127.0.0.1 has (Scheduler Address → Port has it, on "
     "127.0.0.1)"),
    ("Dome Address:\n  IP: 0.0.0.0\n  Port: 8010\nServer:\n  Allow Unauthenticated: true\n",
     "Dome Address → Port: 8010 is not allowed; allowed: a port none of the others on "
     "127.0.0.1 has (Scheduler Address → Port has it, on 127.0.0.1)"),
    # A socket bound to :: takes IPv4's port too.
    ("Dome Address:\n  IP: '::'\n  Port: 8010\nScheduler Address:\n  IP: 0.0.0.0\n"
     "Server:\n  Allow Unauthenticated: true\n", "Dome Address → Port: 8010 is not allowed"),
    ("Alerts:\n  GCN Socket: {Enabled: true, Port: 8014}\n", "Alerts → GCN Socket → Port: "
     "8014 is not allowed; allowed: a port none of the others on 127.0.0.1 has (Alerts Address "
     "→ Port"),
    # Log lines in the journal, then the journal renamed away by the log's rotation.
    ("Logging:\n  File: /x/{service}.db\nDatabase:\n  File: /x/{service}.db\n",
     "Logging → File: '/x/{service}.db' is not allowed; allowed: a file other than Database "
     "→ File"),
    # Every order of the first such alert refused by the scheduler: the event never observed.
    ("Telescope:\n  Max Exposure Time: 30\n", "Alerts → Gravitational Waves → Exposure Time: "
     "60 is not allowed; allowed: at most Telescope → Max Exposure Time (30), or the telescope "
     "refuses every order of such an alert"),
    # The dome's daylight check follows the clock: a real dome would open in the Sun.
    ("Clock: {Mode: simulated, Start: 2026-11-22T00:30:00, Anchor: 2026-11-21T18:00:00}\n"
     "Dome:\n  Enclosure: {Driver: alpaca}\n", "Clock → Mode: 'simulated' is not allowed with "
     "Dome → Enclosure → Driver: alpaca; allowed: 'real', or, for a rehearsal against a device "
     "simulator, Clock → Simulated With Devices: true"),
])
def test_each_mistake_is_named(tmp_path, text, expected):
    message = error_for(tmp_path, text)
    assert message.startswith(str(tmp_path / "toros.conf.yaml") + ": ")
    assert expected in message


def test_a_value_of_aliases_is_quoted_short(tmp_path):
    """Nine levels of ten aliases each: a 300-byte file whose value, written out in the
    message, took 8.5 s, 1.27 GB and a line of 200 MB."""
    levels = ["&l0 [x, x, x, x, x, x, x, x, x, x]"] + [
        f"&l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]" for level in range(1, 9)]
    message = error_for(tmp_path, "Site:\n  Name: [" + ", ".join(levels) + "]\n")
    assert "Site → Name: [[" in message and "is not allowed; allowed: a string" in message
    assert len(message) < 1000


def test_a_data_directory_the_preprocessor_may_not_read_is_warned_of(tmp_path, caplog):
    # Frames moved to a bigger disk, the preprocessor not told: a night never calibrated.
    load_config(write(tmp_path, "Telescope:\n  Data Directory: /data/toros\n"))
    assert [record.getMessage() for record in caplog.records] == [
        f"{tmp_path}/toros.conf.yaml: Telescope → Data Directory (/data/toros) is outside "
        "Preprocessor → Allowed Directories (/var/lib/toros/data): the frames of Observations "
        "with Output: Analysis would be refused by the preprocessor; add it there"]


def test_daemons_on_other_computers_may_share_a_port(tmp_path):
    # Each on its own computer, listening on every interface, reached by its host's name.
    config = load_config(write(tmp_path, "".join(
        f"{service.capitalize()} Address: {{IP: 0.0.0.0, Port: 9000, "
        f"HTTP: 'http://{service}-pc:9000/'}}\n"
        for service in ("scheduler", "telescope", "dome", "preprocessor", "alerts"))
        + "Server:\n  Allow Unauthenticated: true\n"))
    assert config["Dome Address"]["Port"] == config["Telescope Address"]["Port"] == 9000


def test_off_loopback_is_allowed_with_credentials_or_explicit_consent(tmp_path):
    base = "Dome Address:\n  IP: 0.0.0.0\nServer:\n"
    assert load_config(write(tmp_path, base + "  Users: {toros: secret}\n"))
    config = load_config(write(tmp_path, base + "  Allow Unauthenticated: true\n"))
    assert config["Dome Address"]["HTTP"] == "http://127.0.0.1:8012/"


@pytest.mark.parametrize("text, expected", [
    ("Telescope: {Camera: {Driver: lx200, URL: /dev/ttyUSB0}}",
     "Telescope → Camera → Driver: 'lx200' is not allowed; allowed: one of "
     "'simulator', 'alpaca', 'indi'"),
    ("Dome: {Enclosure: {Driver: text-tcp}}",
     "Dome → Enclosure → Driver: 'text-tcp' is not allowed"),
    ("Telescope: {Mount: {Driver: indi}}",
     "Telescope → Mount → Device is required with Driver: indi"),
    ("Telescope: {Mount: {Driver: lx200}}",
     "Telescope → Mount → URL is required with Driver: lx200"),
    ("Telescope: {Mount: {Driver: none}}",
     "Telescope → Mount → Driver: 'none' is not allowed; allowed: one of 'simulator', "
     "'alpaca', 'indi', 'lx200', 'text-tcp'"),
    ("Telescope: {Focuser: {Driver: lx200}}",
     "Telescope → Focuser → Driver: 'lx200' is not allowed; allowed: one of "
     "'none', 'simulator', 'alpaca', 'indi'"),
    ("Telescope: {Focuser: {Best Position: 50000}}",
     "Telescope → Focuser → Best Position is set, but Driver is 'none'"),
])
def test_a_driver_must_drive_its_device_and_have_what_it_needs(tmp_path, text, expected):
    assert expected in error_for(tmp_path, text)


def test_each_networked_driver_has_its_own_default_port(tmp_path):
    config = load_config(write(tmp_path, """
Telescope:
  Mount: {Driver: text-tcp}
  Camera: {Driver: indi, Device: CCD Simulator}
  Filter Wheel: {Driver: alpaca}
Dome:
  Enclosure: {Driver: indi, Device: Dome Simulator, Port: 7777}
"""))
    assert [config["Telescope"][name]["Port"] for name in ("Mount", "Camera", "Filter Wheel")] \
        == [5240, 7624, 11111]
    assert config["Dome"]["Enclosure"]["Port"] == 7777
    assert config["Dome"]["Safety Monitor"]["Port"] is None  # the simulator has none


def test_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="absent.yaml: cannot read the configuration file"):
        load_config(str(tmp_path / "absent.yaml"))


def test_the_file_is_found_from_the_option_then_the_environment(monkeypatch):
    monkeypatch.setenv("TOROS_CONFIG", "/from/environment.yaml")
    assert resolve_path("/from/option.yaml") == "/from/option.yaml"
    assert resolve_path(None) == "/from/environment.yaml"
    monkeypatch.delenv("TOROS_CONFIG")
    assert resolve_path(None) == "/etc/toros/toros.conf.yaml"


def test_service_placeholder():
    assert service_path("/var/log/toros/{service}.log", "dome") == "/var/log/toros/dome.log"


@pytest.mark.parametrize("service", ["scheduler", "telescope", "dome", "preprocessor"])
def test_a_daemon_with_a_bad_config_stops_with_status_78_and_one_message(tmp_path, service):
    path = write(tmp_path, "Site:\n  Elevation: high\n")
    result = subprocess.run([*daemon_command(service), "--config", path], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 78
    assert result.stderr.strip() == (
        f"toros-{service}: {path}: Site → Elevation: 'high' is not allowed; "
        "allowed: a number from -500 to 9000")


def test_an_alerts_daemon_told_to_read_gcn_kafka_without_credentials_stops_with_status_78(
        tmp_path):
    """The variables set in a shell, not in the unit: it started, and said at every
    reconnection 'No provider for SASL mechanism GSSAPI'; no alert ever came."""
    path = write(tmp_path, "Alerts:\n  Kafka: {Enabled: true}\n")
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith("GCN_KAFKA_")}
    result = subprocess.run([*daemon_command("alerts"), "--config", path], capture_output=True,
                            text=True, timeout=60, env=environment)
    assert result.returncode == 78
    assert result.stderr.strip() == (
        "toros-alerts: Alerts → Kafka → Enabled is true, but no client ID and secret are given: "
        "set Alerts → Kafka → Client ID and Client Secret, or GCN_KAFKA_CLIENT_ID and "
        "GCN_KAFKA_CLIENT_SECRET in the daemon's own environment (its systemd unit's or "
        "launchd plist's, not a shell's)")
    checked = subprocess.run([*daemon_command("alerts"), "--config", path, "--check-config"],
                             capture_output=True, text=True, timeout=60, env=environment)
    assert checked.returncode == 0  # (a package's check runs in another environment)


def test_a_daemon_that_cannot_write_its_log_file_stops_with_status_78_and_one_message(
        tmp_path):
    # A traceback and status 1 before: systemd restarted it every few seconds, to no end.
    (tmp_path / "not-a-directory").write_text("")
    path = write(tmp_path, f"Logging:\n  File: {tmp_path}/not-a-directory/{{service}}.log\n")
    result = subprocess.run([*daemon_command("dome"), "--config", path], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 78
    assert re.fullmatch(r"toros-dome: cannot write its log file \(Logging → File\): \[Errno "
                        r"\d+\] .*not-a-directory.*", result.stderr.strip())


def test_a_daemon_whose_credentials_file_cannot_be_read_stops_with_status_78(tmp_path):
    # It started, and every call to another daemon failed: the scheduler's heartbeats too,
    # and the dome closed.
    path = write(tmp_path, f"Logging:\n  File: {tmp_path}/{{service}}.log\n"
                           f"Server:\n  Users: {{toros: pw1}}\n"
                           f"  Credentials File: {tmp_path}/missing\n")
    result = subprocess.run([*daemon_command("scheduler"), "--config", path],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 78
    assert result.stderr.strip() == (f"toros-scheduler: {tmp_path}/missing (Server → "
                                     "Credentials File): cannot read it: No such file or "
                                     "directory")


@pytest.mark.parametrize("line, refused", [("toros:pw2", True), ("toros:pw1", False),
                                           ("elsewhere:pw3", False)],
                         ids=["a wrong password", "the right one", "another computer's user"])
def test_a_daemon_whose_credentials_users_refuses_stops_with_status_78(tmp_path, line,
                                                                        refused):
    # It started, and every call between the daemons was answered 401: nothing observed.
    (tmp_path / "credentials").write_text(line + "\n")
    path = write(tmp_path, f"Logging:\n  File: {tmp_path}/{{service}}.log\n"
                           "Server:\n  Users: {toros: pw1}\n"
                           f"  Credentials File: {tmp_path}/credentials\n")
    result = subprocess.run([*daemon_command("scheduler"), "--config", path, "--check-config"],
                            capture_output=True, text=True, timeout=60)
    if not refused:
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 78
    assert result.stderr.strip() == (f"toros-scheduler: {tmp_path}/credentials (Server → "
                                     "Credentials File): the password of 'toros' is not the "
                                     "one Server → Users holds for it: every call between the "
                                     "daemons would be refused (HTTP 401)")


def test_a_daemon_whose_journal_is_a_directory_stops_with_status_78(tmp_path):
    # It ended with status 1 (restarted by systemd), and left a lock file beside /tmp.
    (tmp_path / "journal").mkdir()
    path = write(tmp_path, f"Logging:\n  File: {tmp_path}/{{service}}.log\n"
                           f"Database:\n  File: {tmp_path}/journal\n")
    result = subprocess.run([*daemon_command("dome"), "--config", path], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 78
    assert f"the journal {tmp_path}/journal (Database → File) is a directory" in \
        (tmp_path / "dome.log").read_text()
    assert not (tmp_path / "journal.lock").exists()


@pytest.mark.parametrize("where", ["under a file", "on a read-only disk"])
def test_a_journal_that_cannot_be_made_where_it_is_set_stops_the_daemon_with_status_78(
        tmp_path, where):
    """No restart mends it: the daemon ended with status 1, and systemd restarted it every
    5 s for ever. (A full disk, which room mends, still ends with 1: test_full_disk.)"""
    with contextlib.ExitStack() as stack:
        if where == "under a file":
            (tmp_path / "file").write_text("")
            directory = tmp_path / "file"
        else:
            directory = stack.enter_context(small_disk(tmp_path / "disk", 1))
            remount(directory, "ro")
        path = write(tmp_path, f"Logging:\n  File: {tmp_path}/{{service}}.log\n"
                               f"Database:\n  File: {directory}/{{service}}.sqlite3\n")
        result = subprocess.run([*daemon_command("dome"), "--config", path],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 78
    assert re.search(rf"CRITICAL cannot open the journal {directory}/dome\.sqlite3 \(Database "
                     r"→ File\): .*; not starting again until that is mended",
                     (tmp_path / "dome.log").read_text())


def test_a_daemon_reads_toros_config_from_the_environment(tmp_path):
    path = write(tmp_path, "Unknown: 1\n")
    result = subprocess.run([*daemon_command("dome")], capture_output=True, text=True, timeout=60,
                            env={"TOROS_CONFIG": path, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 78 and path in result.stderr


def test_the_example_is_valid_yaml_without_tabs():
    text = EXAMPLE.read_text()
    assert "\t" not in text
    assert isinstance(yaml.safe_load(text), dict)


def test_changing_a_configuration_leaves_the_defaults_alone(tmp_path):
    changed = default_config()
    changed["Priorities"]["Job Priorities"]["ToO"] = 0.0
    changed["Simulator"]["Filters"].append("Hα")
    loaded = load_config(write(tmp_path, ""))
    loaded["Telescope"]["Mount"]["Properties"]["x"] = "y"
    for fresh in (default_config(), load_config(write(tmp_path, ""))):
        assert fresh["Priorities"]["Job Priorities"]["ToO"] == 9.0
        assert "Hα" not in fresh["Simulator"]["Filters"]
        assert fresh["Telescope"]["Mount"]["Properties"] == {}


class TestEachDaemonReadsItsOwnSection:
    """Each daemon reads its own section and the shared ones (Site, Clock, Server, Priorities,
    Observing, the addresses...); what two daemons must agree on is shared, not read from
    another daemon's section."""

    OWN_SECTIONS = {"scheduler": "Scheduler", "telescope": "Telescope", "dome": "Dome",
                    "preprocessor": "Preprocessor", "alerts": "Alerts"}

    @pytest.mark.parametrize("package", sorted(OWN_SECTIONS))
    def test_no_daemon_reads_another_daemons_section(self, package):
        root = pathlib.Path(__file__).resolve().parents[1] / "torosmanager"
        others = [section for name, section in self.OWN_SECTIONS.items() if name != package]
        found = [f"{path.relative_to(root)}: {line.strip()}"
                 for path in sorted((root / package).rglob("*.py")) + [root / "handler.py"]
                 for line in path.read_text().splitlines()
                 for section in others if f'config["{section}"]' in line]
        assert found == []

    @pytest.mark.parametrize("old, key, new", [
        ("Scheduler", "Default Priority", "Priorities"),
        ("Scheduler", "ToO Threshold", "Priorities"),
        ("Scheduler", "Sun Altitude", "Observing"),
        ("Telescope", "Bias Frames", "Observing"),
        ("Telescope", "Minimum Altitude", "Observing"),
        ("Dome", "Sun Altitude Limit", "Observing")])
    def test_a_moved_key_in_its_old_place_is_read_with_a_warning(self, tmp_path, caplog,
                                                                 old, key, new):
        value = -9 if "Sun" in key else 7  # (between the two Sun altitudes' defaults)
        config = load_config(write(tmp_path, f"{old}:\n  {key}: {value}\n"))
        assert config[new][key] == value
        assert key not in config[old]
        assert f"{old} → {key} has moved to {new} → {key}" in caplog.text

    def test_a_moved_key_set_in_both_places_is_refused(self, tmp_path):
        message = error_for(tmp_path, "Scheduler:\n  Max Airmass: 3\nObserving:\n  Max Airmass: 2\n")
        assert "Scheduler → Max Airmass and Observing → Max Airmass are both set" in message
