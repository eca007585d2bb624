"""The job config: TOML, CLI flags and validation agree, and every flag reaches the config."""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path

import pytest

from foundation.config import ConfigError, JobConfig, flag_fields
from foundation.layout import RunLayout
from webtext.cli import build_parser
from webtext.commands.options import resolve_config, write_resolved_config


def _sample_value(tp):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal:
        return args[-1], args[-1]
    if origin in (typing.Union, types.UnionType):
        return _sample_value(next(a for a in args if a is not type(None)))
    if origin is tuple:
        return "a,b", ("a", "b")
    if tp is bool:
        return "true", True
    if tp is int:
        return "7", 7
    if tp is float:
        return "0.5", 0.5
    return "x", "x"


def test_every_ingest_flag_reaches_the_resolved_config():
    parser = build_parser()
    sections = ("source", "filter", "fetch", "extract", "quality", "dedup", "output")
    for flag, path, tp in flag_fields(JobConfig):
        if path.split(".")[0] not in sections:
            continue
        text, expected = _sample_value(tp)
        args = parser.parse_args(["ingest", f"--{flag}", text])
        try:
            cfg = resolve_config(args)
        except ConfigError:
            continue  # a value our generic sample makes invalid (validated elsewhere)
        value = cfg
        for part in path.split("."):
            value = getattr(value, part)
        assert value == expected, flag


def test_toml_then_flags(tmp_path):
    toml = tmp_path / "job.toml"
    toml.write_text('name = "t"\n[filter]\nmin_karma = 5\n[fetch]\nmax_bytes = 1000\n')
    args = build_parser().parse_args(["ingest", "--config", str(toml), "--fetch-max-bytes", "2000"])
    cfg = resolve_config(args)
    assert (cfg.name, cfg.filter.min_karma, cfg.fetch.max_bytes) == ("t", 5, 2000)


@pytest.mark.parametrize(
    "toml, message",
    [
        ("[filter]\nmin_karma = -1\n", "filter.min_karma=-1"),
        ("[fetch]\nbogus = 1\n", "unknown setting"),
        ("[fetch]\nmax_bytes = 'big'\n", "expected a int"),
        ("[dedup]\nthreshold = 1.5\n", "dedup.threshold=1.5"),
        ("[fetch]\nmax_failure_fraction = 1.5\n", "fetch.max_failure_fraction=1.5"),
        ("[fetch]\nallow_addresses = ['10.0.0.1/8']\n", "fetch.allow_addresses: '10.0.0.1/8'"),
        ("not toml = = \n", "not valid TOML"),
    ],
)
def test_bad_config_names_field_and_value(tmp_path, toml, message):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        JobConfig.from_toml(path)


def test_resolved_config_round_trips(tmp_path):
    args = build_parser().parse_args(["ingest", "--quality-min-words", "64"])
    cfg = resolve_config(args, **{"output.run_dir": str(tmp_path)})
    path = write_resolved_config(cfg, RunLayout.at(str(tmp_path)), "ingest")
    assert JobConfig.from_dict(json.loads(Path(path).read_text())) == cfg


def test_a_malformed_allow_entry_stops_ingest_before_it_starts(tmp_path, capsys):
    from webtext.cli import main

    dump = tmp_path / "RS.jsonl"
    dump.write_text("{}\n")
    run_dir = tmp_path / "run"
    argv = ["ingest", str(dump), "--run-dir", str(run_dir), "--fetch-allow-addresses"]
    assert main([*argv, "127.0.0.1:8080,[fd00::1]:99999"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fetch.allow_addresses: '[fd00::1]:99999'" in err[0], err
    assert not run_dir.exists()


def test_the_deprecated_boolean_warns_once_and_opens_what_0_0_0_0_0_does(caplog):
    from foundation.config import FetchConfig, _deprecated

    _deprecated.cache_clear()
    cfg = FetchConfig(allow_private_addresses=True)
    FetchConfig(allow_private_addresses=True, allow_addresses=("10.0.0.1",))
    warned = [r for r in caplog.records if "allow_private_addresses is deprecated" in r.message]
    assert len(warned) == 1 and "fetch.allow_addresses" in warned[0].message
    assert [e.text for e in cfg.allow_list] == ["0.0.0.0/0", "::/0"]
