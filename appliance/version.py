"""Hearth's version: one place every room and the web page read it from, without importing the service."""

VERSION = "0.1.0"
