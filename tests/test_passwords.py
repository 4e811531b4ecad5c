"""Credentials: never in a log, a Fault or ``toros`` output; hashes in the configuration."""

import base64
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import yaml

from observatory import settings, wait_until
from torosmanager.config import ConfigError, load_config
from torosmanager.launcher import DaemonProcess
from torosmanager.passwords import Authenticator, hash_password, verify

TOROS = os.path.join(os.path.dirname(sys.executable), "toros")
RIGHT = "right-horse-battery"
OTHER = "other-staple-correct"


def toros(config_path, *arguments, stdin=None):
    config = ["--config", str(config_path)] if config_path else []
    return subprocess.run([TOROS, *config, *arguments], input=stdin, capture_output=True,
                          text=True, timeout=60)


def test_hashes_verify_and_unknown_users_are_refused():
    stored = hash_password(RIGHT)
    assert stored.startswith("scrypt$") and RIGHT not in stored
    assert verify(RIGHT, stored) and not verify(OTHER, stored)
    assert hash_password(RIGHT) != stored  # salted
    users = Authenticator({"toros": stored, "legacy": "plain-one"})
    assert users.check("toros", RIGHT) and users.check("toros", RIGHT)  # the second from memory
    assert not users.check("toros", OTHER)
    assert not users.check("nobody", RIGHT)
    assert users.check("legacy", "plain-one") and not users.check("legacy", "plain-on")


def test_toros_passwd_makes_a_hash():
    made = toros(None, "passwd", "--stdin", stdin=RIGHT + "\n")  # no configuration needed
    assert made.returncode == 0, made.stderr
    assert verify(RIGHT, made.stdout.strip())
    assert RIGHT not in made.stdout + made.stderr


def test_toros_passwd_without_a_password_typed_says_so_without_a_traceback():
    made = toros(None, "passwd", stdin="")   # no terminal, standard input at its end: Ctrl-D
    assert made.returncode == 1
    assert made.stderr.rstrip().endswith(
        "toros: no password typed (--stdin reads one from standard input); nothing made")
    assert "Traceback" not in made.stderr


def test_only_hashes_need_a_credentials_file(tmp_path):
    path = tmp_path / "toros.conf.yaml"
    path.write_text(yaml.safe_dump({"Server": {"Users": {"toros": hash_password(RIGHT)}}}))
    with pytest.raises(ConfigError, match="Server → Credentials File"):
        load_config(str(path))


def test_no_credential_in_any_log_or_output_after_a_401(make_site):
    """The dome takes another password than the scheduler sends: the scheduler's heartbeat
    and `toros status` get 401, and say so, without either password anywhere."""
    site = make_site(settings(Server={"Users": {"toros": RIGHT}},
                              Scheduler={"Manage Dome": False}))
    dome_config = site.directory / "dome.yaml"
    mismatched = yaml.safe_load(open(site.config_path, encoding="utf-8"))
    mismatched["Server"]["Users"] = {"toros": OTHER}
    dome_config.write_text(yaml.safe_dump(mismatched))
    site.daemons["dome"] = DaemonProcess("dome", str(dome_config)).launch()
    site.daemons["dome"].wait_ready()
    site.start("scheduler")
    wait_until(lambda: "cannot send the heartbeat" in site.log("scheduler"), "the 401")
    shown = toros(site.config_path, "status", "--to", "dome")
    assert shown.returncode == 1 and "HTTP 401 Unauthorized" in shown.stderr
    everything = shown.stdout + shown.stderr + "".join(
        site.log(service) for service in ("scheduler", "dome"))
    assert "401 Unauthorized" in site.log("scheduler")
    assert RIGHT not in everything and OTHER not in everything


def test_hashed_users_with_a_credentials_file(make_site, tmp_path):
    credentials = tmp_path / "credentials"
    credentials.write_text(f"# what the daemons send\ntoros:{RIGHT}\n")
    credentials.chmod(0o600)
    site = make_site(settings(Server={"Users": {"toros": hash_password(RIGHT)},
                                      "Credentials File": str(credentials)},
                              Scheduler={"Manage Dome": False}))
    site.start("dome", "scheduler")
    shown = toros(site.config_path, "status", "--to", "dome")
    assert shown.returncode == 0, shown.stderr
    url = site.url("dome")
    for password, expected in ((RIGHT, 200), (OTHER, 401)):
        token = base64.b64encode(f"toros:{password}".encode()).decode()
        request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
        assert status == expected
    assert "401 Unauthorized" not in site.log("scheduler")  # (refused while the dome starts)


def test_plain_passwords_readable_by_all_are_warned_about(make_site):
    site = make_site({"Server": {"Users": {"toros": RIGHT}}})
    os.chmod(site.config_path, 0o644)
    site.start("dome")
    wait_until(lambda: "holds plain passwords" in site.log("dome"), "the warning")
    assert RIGHT not in site.log("dome")
    private = make_site({"Server": {"Users": {"toros": RIGHT}}}, name="private")
    os.chmod(private.config_path, 0o640)
    private.start("dome")
    assert "holds plain passwords" not in private.log("dome")


def test_a_password_hashed_from_a_crlf_line_matches_the_same_credentials_file(tmp_path):
    """`toros passwd --stdin` kept the CR of a CRLF line (a file written on Windows) in the
    password, while the credentials file's line is read without it: the hash never matched,
    and every daemon refused to start (status 78)."""
    made = toros(None, "passwd", "--stdin", stdin=RIGHT + "\r\n")
    assert made.returncode == 0, made.stderr
    assert verify(RIGHT, made.stdout.strip())
    credentials = tmp_path / "credentials"
    credentials.write_bytes(f"toros:{RIGHT}\r\n".encode())
    credentials.chmod(0o600)
    config = tmp_path / "toros.conf.yaml"
    config.write_text(yaml.safe_dump({"Server": {"Users": {"toros": made.stdout.strip()},
                                                 "Credentials File": str(credentials)},
                                      "Database": {"File": str(tmp_path / "{service}.sqlite3")},
                                      "Logging": {"File": str(tmp_path / "{service}.log")}}))
    checked = subprocess.run([os.path.join(os.path.dirname(sys.executable), "toros-scheduler"),
                              "--config", str(config), "--check-config"], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("password", [RIGHT + " ", " " + RIGHT, RIGHT + "\t"])
def test_a_password_with_whitespace_at_either_end_is_refused_saying_why(password):
    """A password ending in a space was hashed as it was, while the credentials file's line is
    read without its surrounding whitespace: the hash never matched that file."""
    made = toros(None, "passwd", "--stdin", stdin=password + "\n")
    assert made.returncode == 1 and made.stdout == ""
    assert made.stderr == ("toros: the password is not allowed: it begins or ends with "
                           "whitespace (a space, a tab), which Server → Credentials File's line "
                           "is read without: it would never match; allowed: a password without "
                           "whitespace at either end; nothing made\n")
