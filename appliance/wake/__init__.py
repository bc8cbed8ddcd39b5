"""Server-side wake word for satellites that stream all the time: the detectors (openWakeWord,
microWakeWord), the worker that runs them in slices, arbitration (only the nearest satellite
answers), answers routed back, and overload handling (busy, stale audio skipped).
"""
