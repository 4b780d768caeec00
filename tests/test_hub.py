"""Hub settings and model references are checked before any work; push errors say what happened."""

import pytest

from hf_vdd.hub import check_model_ref, check_push_settings, push_folder
from hf_vdd.utils import HfVddError


def test_push_settings(monkeypatch):
    check_push_settings(False, None)
    check_push_settings(False, "org/name")  # a repo id for the card only
    with pytest.raises(HfVddError, match="--push_to_hub needs --hub_repo_id"):
        check_push_settings(True, None)
    with pytest.raises(HfVddError, match="not a valid Hub repo id"):
        check_push_settings(True, "org/bad name")
    with pytest.raises(HfVddError, match="HF_HUB_OFFLINE is set"):
        check_push_settings(True, "org/name")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("hf_vdd.hub.get_token", lambda: None)
    with pytest.raises(HfVddError, match="needs a Hub login"):
        check_push_settings(True, "org/name")


def test_model_refs(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    check_model_ref(str(tmp_path / "model"), "--teacher")
    (tmp_path / "empty").mkdir()
    for ref, message in ((str(tmp_path / "empty"), "not a saved model folder"),
                         (str(tmp_path / "missing"), "no such folder"), ("a/b/c", "not an <org>/<name> Hub id"),
                         ("org/not-cached", "HF_HUB_OFFLINE is set and it is not in the local Hub cache")):
        with pytest.raises(HfVddError, match=message):
            check_model_ref(ref, "--teacher")


def test_offline_push_says_nothing_was_uploaded(tmp_path):
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "README.md").write_text("x")
    with pytest.raises(HfVddError, match="Could not push .*set to the Hub dataset repo 'org/x'.*Nothing was uploaded"):
        push_folder(tmp_path / "set", "org/x")
    assert (tmp_path / "set" / "README.md").read_text() == "x"
