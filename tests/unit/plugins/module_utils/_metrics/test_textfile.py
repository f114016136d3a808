# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The textfile writer: checks, rendering read back by prometheus_client's
parser, merge and add, and the atomic write."""

from __future__ import annotations

import math
import os
import stat

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.datasteward.storage.plugins.module_utils._metrics import textfile as tf


def families(*specs, **kwargs):
    return tf.normalize_all(list(specs), kwargs.get("labels"))


def parsed(text):
    return dict((f.name, f) for f in text_string_to_metric_families(text))


def gauge(name="datasteward_x_bytes", samples=None, **kwargs):
    spec = {"name": name, "type": "gauge", "help": "Some bytes.", "samples": samples or [{"labels": {}, "value": 1}]}
    spec.update(kwargs)
    return spec


def test_render_is_read_back_by_prometheus_client():
    text = tf.render(
        families(
            gauge(
                samples=[
                    {"labels": {"mountpoint": '/data "raw"\\x', "device": "/dev/sdb1"}, "value": 12.5},
                    {"labels": {"mountpoint": "/line\nbreak", "device": "/dev/sdc"}, "value": "7"},
                ],
                help="Back\\slash and\nnewline.",
            ),
            {"name": "datasteward_runs_total", "type": "counter", "help": "Runs.", "samples": [{"labels": {"result": "ok"}, "value": 3}]},
            {"name": "datasteward_build_info", "type": "info", "help": "Build.", "samples": [{"labels": {"version": "1"}}]},
            gauge(
                "datasteward_ratio",
                samples=[
                    {"labels": {"k": "nan"}, "value": float("nan")},
                    {"labels": {"k": "inf"}, "value": float("inf")},
                    {"labels": {"k": "true"}, "value": True},
                ],
            ),
        )
    )
    found = parsed(text)
    samples = found["datasteward_x_bytes"].samples
    assert [(s.labels["mountpoint"], s.value) for s in samples] == [('/data "raw"\\x', 12.5), ("/line\nbreak", 7.0)]
    assert found["datasteward_x_bytes"].documentation == "Back\\slash and\nnewline."
    assert found["datasteward_runs"].type == "counter"
    assert found["datasteward_runs"].samples[0].name == "datasteward_runs_total"
    assert found["datasteward_build_info"].type == "gauge" and found["datasteward_build_info"].samples[0].value == 1
    values = dict((s.labels["k"], s.value) for s in found["datasteward_ratio"].samples)
    assert math.isnan(values["nan"]) and values["inf"] == float("inf") and values["true"] == 1


def test_labels_are_sorted_and_common_labels_added():
    text = tf.render(
        families(gauge(samples=[{"labels": {"b": "2", "a": "1"}, "value": 1}, {"labels": {"tree": "mine"}, "value": 2}]), labels={"tree": "/scratch"})
    )
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == ['datasteward_x_bytes{a="1",b="2",tree="/scratch"} 1', 'datasteward_x_bytes{tree="mine"} 2']


def test_non_utf8_label_values_are_escaped():
    mount = b"/data/caf\xe9".decode("utf-8", "surrogateescape")
    text = tf.render(families(gauge(samples=[{"labels": {"mountpoint": mount}, "value": 1}])))
    text.encode("utf-8")
    assert parsed(text)["datasteward_x_bytes"].samples[0].labels["mountpoint"] == "/data/caf\\xe9"


@pytest.mark.parametrize(
    "spec, message",
    [
        (gauge("9starts_with_digit"), "is not a valid Prometheus name"),
        (gauge("datasteward_runs_total"), "a counter's name ends in _total"),
        ({"name": "datasteward_runs", "type": "counter", "samples": []}, "a counter's name ends in _total"),
        ({"name": "datasteward_build", "type": "info", "samples": []}, "an info metric's name ends in _info"),
        (gauge(type="histogram"), "type must be one of gauge, counter, info"),
        (gauge(update="add"), "update add is for counters only"),
        (gauge(samples=[{"labels": {"__name__": "x"}, "value": 1}]), "label name '__name__' is not valid"),
        (gauge(samples=[{"labels": {"bad-name": "x"}, "value": 1}]), "label name 'bad-name' is not valid"),
        (gauge(samples=[{"labels": {"a": "1"}, "value": 1}, {"labels": {"a": "1"}, "value": 2}]), "two samples with the labels"),
        (gauge(samples=[{"labels": {}, "value": "many"}]), "value 'many' is not a number"),
        ({"name": "datasteward_runs_total", "type": "counter", "samples": [{"labels": {}, "value": -1}]}, "a counter cannot be negative"),
    ],
)
def test_bad_families_are_refused_naming_the_metric(spec, message):
    with pytest.raises(tf.TextfileError, match=message):
        families(spec)


def test_a_family_given_twice_is_refused():
    with pytest.raises(tf.TextfileError, match="datasteward_x_bytes is given twice"):
        families(gauge(), gauge())


def test_merge_keeps_old_series_and_add_accumulates():
    counter = {
        "name": "datasteward_files_total",
        "type": "counter",
        "update": "add",
        "samples": [{"labels": {"outcome": "copied"}, "value": 2}, {"labels": {"outcome": "failed"}, "value": 0}],
    }
    last = gauge("datasteward_last_success_timestamp_seconds", update="merge", samples=[{"labels": {"job": "a"}, "value": 100}])
    first = tf.render(families(counter, last))
    second_counter = dict(counter, samples=[{"labels": {"outcome": "copied"}, "value": 3}])
    second_last = dict(last, samples=[{"labels": {"job": "b"}, "value": 200}])
    second = tf.render(families(second_counter, second_last), tf.parse(first))
    found = parsed(second)
    assert dict((s.labels["outcome"], s.value) for s in found["datasteward_files"].samples) == {"copied": 5, "failed": 0}
    assert dict((s.labels["job"], s.value) for s in found["datasteward_last_success_timestamp_seconds"].samples) == {"a": 100, "b": 200}
    third = tf.render(families(dict(last, update="replace", samples=[])), tf.parse(second))
    assert "datasteward_last_success_timestamp_seconds{" not in third


def test_parse_reads_back_what_render_wrote():
    text = tf.render(families(gauge(samples=[{"labels": {"m": 'a"b\\c\nd'}, "value": 1.25}, {"labels": {}, "value": 3}])))
    back = tf.parse(text)["datasteward_x_bytes"]
    assert dict(back["samples"]) == {(("m", 'a"b\\c\nd'),): 1.25, (): 3}
    assert back["type"] == "gauge" and back["help"] == "Some bytes."


def test_parse_refuses_foreign_lines_naming_the_line():
    with pytest.raises(tf.TextfileError, match="x.prom line 2: not a sample of a declared metric"):
        tf.parse("# TYPE a gauge\nb 1\n", "x.prom")


def test_write_atomic_sets_attributes_before_the_rename(tmp_path):
    target = tmp_path / "datasteward_test.prom"
    seen = []

    def prepare(tmp):
        seen.append((os.path.basename(tmp), target.exists()))
        os.chmod(tmp, 0o644)

    tf.write_atomic(str(target), "a 1\n", prepare=prepare)
    assert target.read_text() == "a 1\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    ((name, existed),) = seen
    assert name.startswith(".datasteward_test.prom.") and name.endswith(".tmp") and existed is False
    assert sorted(os.listdir(tmp_path)) == ["datasteward_test.prom"]


def test_write_atomic_leaves_no_temporary_when_it_fails(tmp_path):
    target = tmp_path / "datasteward_test.prom"
    target.write_text("old\n")

    def fail(tmp):
        raise OSError(13, "Permission denied")

    with pytest.raises(OSError):
        tf.write_atomic(str(target), "new\n", prepare=fail)
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["datasteward_test.prom"]


def test_check_path(tmp_path):
    tf.check_path(str(tmp_path / "ok.prom"))
    for bad, message in (
        (tmp_path / "x.txt", r"only files named \*.prom"),
        (tmp_path / ".hidden.prom", "not hidden"),
        (tmp_path / "no" / "x.prom", "the directory .* does not exist"),
    ):
        with pytest.raises(tf.TextfileError, match=message):
            tf.check_path(str(bad))
