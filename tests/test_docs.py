"""Docs that tests keep honest: every topic, config key and command is documented."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from appliance.commands import cli

from appliance.state import config
from mqtt.messages import all_topics

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def test_every_topic_is_in_the_protocol_document():
    text = (DOCS / "protocol.md").read_text()
    missing = [t for t in all_topics() if f"`{t}`" not in text]
    assert not missing, f"docs/protocol.md does not name these topics: {missing}"


def test_every_config_key_is_in_the_config_document():
    text = (DOCS / "config.md").read_text()
    sections = re.split(r"^## \[(\w+)\]", text, flags=re.M)
    documented = {sections[i]: sections[i + 1] for i in range(1, len(sections), 2)}
    missing = []
    for name, cls in config.SECTIONS.items():
        body = documented.get(name, "")
        missing += [f"{name}.{f.name}" for f in dataclasses.fields(cls) if f"`{f.name}`" not in body]
    assert not missing, f"docs/config.md does not document: {missing}"


def test_documented_defaults_match_the_code():
    text = (DOCS / "config.md").read_text()
    sections = re.split(r"^## \[(\w+)\]", text, flags=re.M)
    for i in range(1, len(sections), 2):
        cls = config.SECTIONS[sections[i]]
        defaults = {f.name: config._toml_value(f.default) for f in dataclasses.fields(cls)
                    if f.default is not dataclasses.MISSING}
        for key, value in re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", sections[i + 1], flags=re.M):
            assert defaults.get(key) == value, f"[{sections[i]}] {key}: docs say {value}, code says {defaults.get(key)}"


def test_the_default_config_file_parses():
    from appliance.commands.runner import _DEFAULT_CONFIG
    import tomllib
    assert config.from_dict(tomllib.loads(_DEFAULT_CONFIG), Path("/tmp")) == config.Settings(data_dir=Path("/tmp"))


def test_every_command_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    sub = next(a for a in cli.parser()._actions if a.dest == "command")
    missing = [name for name in sub.choices if f"hearth {name}" not in readme]
    assert not missing, f"README.md does not mention: {missing}"
    for line in ("./build.sh run", "./build.sh test", ".venv/bin/hearth client say", ".venv/bin/hearth client transcribe"):
        assert line in readme


def test_every_abuse_and_fault_test_is_named_in_the_threat_and_operations_docs():
    """Each defence in docs/security.md and each fault in docs/operations.md names the test that
    proves it: a new abuse or fault test module must be written into its document."""
    for tier, doc in (("abuse", "security.md"), ("faults", "operations.md")):
        text = (DOCS / doc).read_text()
        modules = sorted((ROOT / "tests" / tier).glob("test_*.py"))
        assert modules, f"tests/{tier} holds no tests"
        missing = [m.name for m in modules if f"tests/{tier}/{m.name}" not in text]
        assert not missing, f"docs/{doc} does not name {missing}"
