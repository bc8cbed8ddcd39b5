"""Helpers: other machines that lend Hearth their engines over the broker (docs/helpers.md).

On the box, `room.install(service)` (called by the wiring, appliance/service.py, after the devices) puts a
`Dispatcher` where the decoder stood, keeps the `Roster` of paired helpers and their offers and
publishes the jobs protocol it speaks; when `helpers.take_jobs` is on, the box's own engine is one
more taker the dispatcher chooses from. A helper itself runs `hearth helper run` (worker.py).
"""
