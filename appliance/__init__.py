"""The appliance: Hearth's service on the box.

`service.py` is the wiring (the composition root): it builds every long-lived part once, installs
each room into the running service, and hands the rooms' routes to the web page (web/). Everything
below it is a room that says what it owns:

  voice/     where audio enters, the STT sessions, fair shares, where the reply leaves
  audio/     PCM, decoding, VAD endpointing, turn ends
  stt/ tts/  the speech-to-text and text-to-speech engines and their models
  wake/      server-side wake word, arbitration between satellites, overload
  devices/   pairing, the registry, per-device logins and settings, presence
  helpers/   other machines that lend their engines over the broker
  compat/    Hermes (Rhasspy), Wyoming (Home Assistant), discovery
  update/    the box's own signed updates and rollback
  support/   the support bundle
  state/     the store, the data disk, integrity, snapshots, backups, config, accounts
  process/   control channel, chores, systemd, metrics, restart, the broker as Hearth runs it
  commands/  the `hearth` command line

`version.py` is the one VERSION. Imports run one way: commands -> service -> web -> rooms
(tests/test_import_direction.py).
"""
