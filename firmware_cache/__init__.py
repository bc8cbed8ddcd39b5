"""Firmware cache: manifests, content-addressed store, single-flight resumable fetch, verification, rollout."""
