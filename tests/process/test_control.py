"""The local control channel (appliance/process/control.py): a real Unix socket, a real flock."""

from __future__ import annotations

import os
import socket
import stat
import threading

import pytest

from appliance.process import control


class Refused(Exception):
    code = "bad_thing"


@pytest.fixture
def served(tmp_path):
    lock = control.ServiceLock(tmp_path)
    assert lock.try_acquire("test service")
    server = control.ControlServer(tmp_path)
    server.register("echo", lambda params: {"got": params})
    server.register("refuse", lambda params: (_ for _ in ()).throw(Refused("no, and here is why")))
    server.register("crash", lambda params: 1 / 0)
    server.start()
    yield server
    server.stop()
    lock.release()


def test_answers_refusals_and_crashes_come_back_as_codes(tmp_path, served):
    assert control.ask(tmp_path, "echo", {"a": 1}) == {"got": {"a": 1}}
    for action, code, words in (("refuse", "bad_thing", "here is why"), ("crash", "internal", "division by zero"),
                                ("nothing", "unknown_action", "no action 'nothing'")):
        with pytest.raises(control.ControlError) as err:
            control.ask(tmp_path, action)
        assert err.value.code == code and words in str(err.value)
    assert control.ask(tmp_path, "echo") == {"got": {}}          # the server survived all of it


def test_socket_is_private(tmp_path, served):
    path = control.socket_path(tmp_path)
    assert stat.S_ISSOCK(path.stat().st_mode) and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_garbage_gets_a_clear_error(tmp_path, served):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(control.socket_path(tmp_path)))
        s.sendall(b"not json\n")
        assert b'"bad_request"' in s.makefile("rb").readline()


def test_call_acts_alone_only_when_the_lock_is_free(tmp_path):
    ran = []
    assert control.call(tmp_path, "echo", {}, alone=lambda: ran.append(1) or "alone", holder="test cmd") == "alone"
    assert ran == [1]
    assert control.ServiceLock(tmp_path).holder() == ""        # released, and says nobody holds it


def test_call_asks_the_service_when_it_runs(tmp_path, served):
    result = control.call(tmp_path, "echo", {"x": 2}, alone=lambda: pytest.fail("acted alone"), holder="t")
    assert result == {"got": {"x": 2}}


def test_call_waits_for_a_starting_service_then_asks_it(tmp_path):
    lock = control.ServiceLock(tmp_path)
    assert lock.try_acquire("a service still loading its engines")
    server = control.ControlServer(tmp_path)
    server.register("echo", lambda params: "from the service")
    starter = threading.Timer(0.5, server.start)
    starter.start()
    try:
        assert control.call(tmp_path, "echo", {}, alone=lambda: pytest.fail("acted alone"), holder="t",
                            wait_s=10) == "from the service"
    finally:
        starter.join()
        server.stop()
        lock.release()


def test_a_held_lock_with_nobody_answering_ends_in_a_clear_error(tmp_path):
    lock = control.ServiceLock(tmp_path)
    assert lock.try_acquire("hearth firmware check")
    try:
        control.socket_path(tmp_path).parent.mkdir()
        with socket.socket(socket.AF_UNIX) as stale:           # a socket file left by a killed service
            stale.bind(str(control.socket_path(tmp_path)))
        with pytest.raises(control.ControlError) as err:
            control.call(tmp_path, "echo", {}, alone=lambda: pytest.fail("acted alone"), holder="t", wait_s=0.5)
        assert err.value.code == "busy" and "hearth firmware check" in str(err.value)
    finally:
        lock.release()


def test_a_deep_data_directory_still_works(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    assert len(os.fsencode(control.socket_path(deep))) > 108
    server = control.ControlServer(deep)
    server.register("echo", lambda params: "deep")
    server.start()
    try:
        assert control.ask(deep, "echo") == "deep"
    finally:
        server.stop()
