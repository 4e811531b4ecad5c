"""The service manager's commands that toros's messages suggest: systemctl on Linux, launchctl
on macOS (where the daemons are the LaunchDaemons ``org.toros.<service>``)."""

import sys

#: The launchd label of a daemon is this followed by its service name.
LAUNCHD_LABEL_PREFIX = "org.toros."


def _on_macos():
    return sys.platform == "darwin"


def status_command(service):
    """How to see whether *service*'s daemon runs, and why it stopped."""
    if _on_macos():
        return f"sudo launchctl print system/{LAUNCHD_LABEL_PREFIX}{service}"
    return f"systemctl status {service}"


def restart_command():
    """How to restart the daemons."""
    if _on_macos():
        return f"sudo launchctl kickstart -k system/{LAUNCHD_LABEL_PREFIX}<service>, for each"
    return "sudo systemctl restart toros.target"
