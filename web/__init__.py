"""The HTTP edge: pages, JSON API, the Mycroft-compatible device API, /metrics, firmware downloads."""
