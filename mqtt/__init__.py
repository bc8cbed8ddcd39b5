"""The wire contract (topics, messages, versions) and the broker side (Mosquitto config, client)."""
