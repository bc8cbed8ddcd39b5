"""Updating the appliance itself: signed RAUC bundles written to the inactive A/B root slot.

    system.py     RAUC on this box: its executable, its system config (compatible, keyring, slots)
    bundle.py     what a bundle is, verified before anything is written (`rauc info`)
    slots.py      both slots as RAUC reports them (`rauc status`)
    state.py      the last update's result on the data partition, and what a boot says about it
    installer.py  verify, then `rauc install`, one at a time, with progress
    health.py     is Hearth healthy (for `hearth update confirm`, before the slot is marked good)
    offer.py      the firmware cache's `hearth-appliance` releases for this box's compatible
    room.py       the wiring into the service: control actions, the state at boot
    cli.py        `hearth update status|install|confirm`
"""
