"""No secret is ever recorded: provenance keeps an allow-list of the variables that change what
is measured, and drops any name that looks secret even if it is on that list."""
from __future__ import annotations

from common import sysinfo
from tests.support.secrets import PLANTED



def test_only_allow_listed_names_are_recorded():
    env = dict(PLANTED, OMP_NUM_THREADS="2", TF_ENABLE_ONEDNN_OPTS="0", CUDA_VISIBLE_DEVICES="1",
               TF_SOMETHING_NEW="x", OMP_PROC_BIND="close")
    assert sysinfo.measured_env(env) == {"CUDA_VISIBLE_DEVICES": "1", "OMP_NUM_THREADS": "2",
                                         "TF_ENABLE_ONEDNN_OPTS": "0"}


def test_a_secret_looking_name_is_dropped_even_if_allow_listed(monkeypatch):
    monkeypatch.setitem(sysinfo.MEASURED_ENV, "MY_API_KEY", "pretend someone listed it")
    monkeypatch.setitem(sysinfo.MEASURED_ENV, "TF_TOKEN_x", "pretend someone listed it")
    assert sysinfo.measured_env({"MY_API_KEY": "s", "TF_TOKEN_x": "s", "OMP_NUM_THREADS": "1"}) == \
        {"OMP_NUM_THREADS": "1"}


def test_every_allow_listed_name_says_why_and_none_looks_secret():
    for name, why in sysinfo.MEASURED_ENV.items():
        assert why.strip(), name
        assert not sysinfo.is_secret_name(name), name
    for name in PLANTED:
        assert sysinfo.is_secret_name(name) or name not in sysinfo.MEASURED_ENV


def test_provenance_reads_the_real_environment(monkeypatch):
    for name, value in PLANTED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    env = sysinfo.provenance()["env"]
    assert env.get("OMP_NUM_THREADS") == "3"
    assert not any("FAKE-SECRET" in v for v in env.values())
