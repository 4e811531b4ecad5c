"""Alerts: gravitational-wave, GRB, neutrino and X-ray alerts turned into observations.

The alerts daemon (:mod:`.handler`) and what it is made of, in the order an alert travels:

- :mod:`.sources`: GCN Kafka, the VOEvent Transport Protocol, GCN Classic socket notices;
- :mod:`.intake`, :mod:`.formats`, :mod:`.event`: what arrives (LVK JSON, VOEvent 2.0, GCN JSON,
  160-byte GCN notices, bare skymaps) read into one :class:`~torosmanager.alerts.event.Alert`;
- :mod:`.policy`: which alerts to act on (the ``Alerts`` section of the configuration);
- :mod:`.skymap`, :mod:`.targets`, :mod:`.galaxies`, :mod:`.tiles`: the localisation, and the
  galaxies, fields or single pointing that cover it;
- :mod:`.pick`: what of those is observable in one night, within a budget;
- :mod:`.response`: the Observation orders an alert calls for, tonight and on the later nights
  followed (``toros alert --dry-run``);
- :mod:`.events`: the book of alerts read and orders planned, kept before anything is sent;
- :mod:`.report`, :mod:`.coverage`, :mod:`torosmanager.commands.alerts`: what a person sees
  (status page, ``toros alerts``).
"""
