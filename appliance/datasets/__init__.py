"""Datasets other households or a community share: imported, checked, kept apart (docs/web.md)."""
