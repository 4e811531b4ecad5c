"""Alerts: gravitational-wave, GRB and neutrino alerts, read and turned into targets.

The building blocks of the coming ``alerts`` daemon (see ``shared/design.md``):

- :mod:`.event`, :mod:`.formats`: an alert as it arrives (LVK JSON, VOEvent 2.0, GCN JSON
  notices) read into one :class:`~torosmanager.alerts.event.Alert`;
- :mod:`.skymap`, :mod:`.tiles`: a HEALPix localisation (multi-order or flat) and the fields of
  view that cover most of its probability.

Nothing here talks to a daemon yet.
"""
