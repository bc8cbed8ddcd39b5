"""Compatibility edges: Hermes (Rhasspy) over MQTT, Wyoming (Home Assistant) over TCP, zeroconf discovery."""
