"""`hearth firmware status | check | import` through the parser and run(), as the lead wires them."""

from __future__ import annotations

import argparse
import json

from appliance.state import config
from firmware_cache import cli
from firmware_support import Upstream, free_port, image, publish_release, release_doc


def hearth(argv: list[str], data_dir, capsys, **firmware) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="hearth")
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    settings = config.from_dict({"firmware": {"check_interval_min": 0, **firmware}}, data_dir)
    code = cli.run(parser.parse_args(argv), settings)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_check_import_status(tmp_path, capsys):
    up = Upstream()
    try:
        publish_release(up, "speaker", "1.0.0", image(100_000))
        code, out, _ = hearth(["firmware", "check", "speaker", "--url", up.url + "/{type}/{channel}.json"], tmp_path, capsys)
        assert code == 0 and "speaker stable: 1.0.0 cached and verified" in out
        assert "speaker beta: no release upstream" in out
    finally:
        up.close()
    usb = tmp_path / "usb"
    usb.mkdir()
    data = image(50_000, 4)
    (usb / "lamp.bin").write_bytes(data)
    (usb / "lamp.json").write_text(json.dumps(release_doc("lamp", "3.0", data, "lamp.bin")))
    code, out, _ = hearth(["firmware", "import", str(usb)], tmp_path, capsys)
    assert (code, out) == (0, "lamp stable: 3.0 cached and verified\n")
    code, out, _ = hearth(["firmware", "status"], tmp_path, capsys)
    assert code == 0
    assert "lamp stable: current 3.0, previous -" in out and "speaker stable: current 1.0.0" in out


def test_errors_are_one_line_and_exit_1(tmp_path, capsys):
    code, _, err = hearth(["firmware", "check"], tmp_path, capsys)
    assert code == 1 and err.startswith("Error: no device types known yet")
    code, _, err = hearth(["firmware", "import", str(tmp_path / "nothing")], tmp_path, capsys)
    assert code == 1 and "not a folder" in err
    dead = f"http://127.0.0.1:{free_port()}/{{type}}/{{channel}}.json"
    code, _, err = hearth(["firmware", "check", "speaker", "--url", dead], tmp_path, capsys)
    assert code == 1 and "Error: speaker stable: cannot reach the firmware upstream" in err
