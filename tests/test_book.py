"""Chapters run under papermill at the ci preset, and a bad parameter stops them with a clear error."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pm = pytest.importorskip("papermill")

pytestmark = [pytest.mark.slow, pytest.mark.book]


def _execute(tmp_path, **params):
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(str(REPO / "notebooks" / "01_numerosity.ipynb"), str(out), parameters=params,
                        cwd=str(tmp_path), kernel_name="python3", progress_bar=False)
    return out


def test_numerosity_chapter_executes_at_ci(tmp_path, monkeypatch):
    monkeypatch.setenv("PROBE_RESULTS", str(tmp_path / "results"))
    out = _execute(tmp_path, preset="ci", models=["vae"], counts=[2, 4], seeds=1, device="cpu")
    text = out.read_text()
    assert text.count('"image/png"') >= 4
    assert "Smoke test" in text
    assert list((tmp_path / "results" / "numerosity" / "ci" / "vae").rglob("*.json"))


@pytest.mark.parametrize("params,message", [
    (dict(counts=[40]), "parameter 'counts[0]' must be an integer in 1..16"),
    (dict(models=["gan"]), "parameter 'models[0]' must be one of"),
    (dict(preset="fast"), "parameter 'preset' must be one of"),
    (dict(seeds=-2), "parameter 'seeds' must be an integer in 1..1000"),
])
def test_bad_papermill_parameter_gives_a_clear_error(tmp_path, monkeypatch, params, message):
    monkeypatch.setenv("PROBE_RESULTS", str(tmp_path / "results"))
    with pytest.raises(pm.PapermillExecutionError) as err:
        _execute(tmp_path, **{"preset": "ci", "device": "cpu", **params})
    assert "ParameterError" in str(err.value) and message in str(err.value)
    assert not (tmp_path / "results").exists()
