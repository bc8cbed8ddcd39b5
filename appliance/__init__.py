"""The appliance service: config, wiring, the voice pipeline, devices and the `hearth` command."""
