"""TLS for devices that can use it (Hearth's own CA, handed over at pairing) and the
`hearth devices` command against a running Hearth."""

from __future__ import annotations

import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from appliance.commands import cli
from appliance.commands.client import DeviceLink
from conftest import Hearth, free_port, make_settings
from devices_kit import pair_device
from mqtt import devices as wire
from mqtt.client import Connection, Credentials, MqttError
from test_devices_broker import Sniffer, wait_for

pytestmark = pytest.mark.own_hearth


@pytest.fixture(scope="module")
def tls_hearth(tmp_path_factory):
    h = Hearth(make_settings(tmp_path_factory.mktemp("tls"), broker={"tls_port": free_port()})).start()
    yield h
    h.stop()


def pair_over_http(h, name: str) -> dict:
    url = h.web_url
    code = requests.get(f"{url}/v1/device/code", params={"state": name, "type": "satellite", "name": name}).json()
    h.service.devices.confirm(code["code"])
    answer = requests.post(f"{url}/v1/device/activate", json={"state": name, "token": code["token"]})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_ca_is_made_on_first_start_and_handed_over_at_pairing(tls_hearth, tmp_path):
    tls_dir = tls_hearth.settings.data_dir / "tls"
    assert stat.S_IMODE((tls_dir / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tls_dir / "broker.key").stat().st_mode) == 0o600
    login = pair_over_http(tls_hearth, "secure")
    mqtt = login["mqtt"]
    assert mqtt["tls_port"] == tls_hearth.settings.broker.tls_port
    assert mqtt["ca_cert"] == (tls_dir / "ca.pem").read_text()
    assert "PRIVATE KEY" not in mqtt["ca_cert"]
    ca = tmp_path / "ca.pem"
    ca.write_text(mqtt["ca_cert"])
    creds = Credentials("127.0.0.1", mqtt["tls_port"], mqtt["username"], mqtt["password"], str(ca))
    devices = tls_hearth.service.devices
    with Sniffer(creds, [wire.settings(mqtt["username"])]) as spy:
        assert wait_for(lambda: spy.topics() == [wire.settings(mqtt["username"])])
        spy.conn.publish(wire.status(mqtt["username"]), wire.DeviceStatus(online=True).to_payload(), 1, True)
        assert wait_for(lambda: devices.get(mqtt["username"]).transport == "tls")
    plain = pair_over_http(tls_hearth, "plain")["mqtt"]
    with DeviceLink(Credentials("127.0.0.1", plain["port"], plain["username"], plain["password"])) as link:
        link.publish(wire.status(plain["username"]), wire.DeviceStatus(online=True).to_payload())
        assert wait_for(lambda: devices.get(plain["username"]).transport == "plain")


def test_tls_refuses_a_broker_signed_by_another_ca(tls_hearth, tmp_path):
    """The device checks the broker: a CA that did not sign it fails the handshake."""
    from appliance.devices import ca as ca_module
    other = ca_module.ensure(tmp_path / "other", ["localhost"])
    login = pair_over_http(tls_hearth, "checker")["mqtt"]
    creds = Credentials("127.0.0.1", login["tls_port"], login["username"], login["password"], str(other.ca))
    with pytest.raises((MqttError, ssl.SSLError)):
        Connection(creds, lambda t, p: None).start(wait=3)


def run_cli(h, *args, capsys) -> tuple[int, str, str]:
    rc = cli.main(["--data", str(h.settings.data_dir), "devices", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_pair_list_rename_revoke(hearth, capsys):
    hearth.service.devices.pairing.limiter.reset()
    url = hearth.web_url
    code = requests.get(f"{url}/v1/device/code", params={"state": "cli", "type": "satellite", "platform": "esp32"}).json()
    rc, out, _ = run_cli(hearth, "list", capsys=capsys)
    assert rc == 0 and "Asking to pair" in out and "from 127.0.0.1" in out
    assert code["code"] not in out                  # the person types the code the device shows
    rc, out, _ = run_cli(hearth, "pair", code["code"].lower(), "--name", "Attic", "--room", "attic", capsys=capsys)
    assert rc == 0 and "Paired" in out and "Attic" in out and "the running Hearth has applied it" in out
    login = requests.post(f"{url}/v1/device/activate", json={"state": "cli", "token": code["token"]}).json()
    dev = login["uuid"]
    rc, out, _ = run_cli(hearth, "list", capsys=capsys)
    line = next(line for line in out.splitlines() if line.startswith(dev))
    assert "Attic" in line and "attic" in line and "satellite" in line and "active" in line
    rc, out, _ = run_cli(hearth, "rename", dev[:6], "Loft", capsys=capsys)
    assert rc == 0 and '"Attic" -> "Loft"' in out
    assert hearth.service.devices.get(dev).name == "Loft"
    creds = Credentials("127.0.0.1", login["mqtt"]["port"], dev, login["mqtt"]["password"])
    with Sniffer(creds, [wire.settings(dev)]) as spy:
        assert wait_for(lambda: spy.conn.connected.is_set())
        rc, out, _ = run_cli(hearth, "revoke", dev, capsys=capsys)
        assert rc == 0 and "Revoked" in out and "the running Hearth has applied it" in out
        assert wait_for(lambda: not spy.conn.connected.is_set())
    with pytest.raises(MqttError):
        Connection(creds, lambda t, p: None).start(wait=3)
    rc, out, err = run_cli(hearth, "revoke", dev, capsys=capsys)
    assert rc == 1 and err.startswith("Error: no device")
    rc, out, err = run_cli(hearth, "pair", "AAAAAA", capsys=capsys)
    assert rc == 1 and "Error: no pairing code 'AAAAAA'" in err


def test_cli_as_a_command(hearth):
    """The installed `hearth` entry point, as a person runs it."""
    hearth_bin = str(Path(sys.executable).with_name("hearth"))
    paired = pair_device(hearth, "Shed")
    done = subprocess.run([hearth_bin, "--data", str(hearth.settings.data_dir), "devices", "list"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split() == ["ID", "NAME", "ROOM", "TYPE", "STATE", "ONLINE", "MQTT", "LAST", "SEEN"]
    assert any(line.startswith(paired.id) and "Shed" in line for line in done.stdout.splitlines())
    bad = subprocess.run([hearth_bin, "--data", str(hearth.settings.data_dir), "devices", "rename", "nosuch", "x"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.startswith("Error: no device 'nosuch'")
