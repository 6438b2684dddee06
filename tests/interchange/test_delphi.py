"""delphi explanation files (`<module>_latent<index>.txt`, a JSON string each) in, on both dialects."""

from __future__ import annotations

import json

import pytest
from interchange_seed import create_sae
from sqlalchemy import select

from labeler.errors import ConfigError, NotFoundError
from labeler.interchange import import_labels
from labeler.store.models import Feature, Label


def write_explanations(folder, explanations: dict[str, object]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in explanations.items():
        (folder / name).write_text(json.dumps(value))


def test_import_delphi_explanations_as_candidates(session, tmp_path):
    seeded = create_sae(session, with_examples=False)
    folder = tmp_path / "results" / "explanations"
    write_explanations(folder, {
        "layers.6_latent0.txt": "Names of cities",
        "layers.6_latent1.txt": {"explanation": "Python code"},  # a fork's format
        "layers.6_latent2.txt": "Explanation could not be parsed.",  # delphi's failure placeholder
        "layers.6_latent3.txt": "  ",
        "layers.6_latent4.txt": "Words after\n'the'",
        "layers.7_latent0.txt": "another module",
    })
    (folder / "notes.md").write_text("not an explanation")

    with pytest.raises(ConfigError, match=r"2 modules \(layers.6, layers.7\); pick one with --source"):
        import_labels(session, fmt="delphi", path=tmp_path, sae_id=seeded.sae_id)
    summary = import_labels(session, fmt="delphi", path=tmp_path, sae_id=seeded.sae_id, source="layers.6",
                            model="Llama-3.1-70B")
    session.commit()
    assert (summary.n_read, summary.n_imported, summary.n_skipped) == (5, 3, 2)
    rows = session.execute(select(Feature.feature_index, Label.text, Label.source, Label.method, Label.model,
                                  Label.status).join(Feature, Feature.id == Label.feature_id)
                           .order_by(Feature.feature_index)).all()
    assert [tuple(r) for r in rows] == [
        (0, "Names of cities", "import", "delphi", "Llama-3.1-70B", "candidate"),
        (1, "Python code", "import", "delphi", "Llama-3.1-70B", "candidate"),
        (4, "Words after 'the'", "import", "delphi", "Llama-3.1-70B", "candidate"),
    ]
    again = import_labels(session, fmt="delphi", path=folder, sae_id=seeded.sae_id, source="layers.6",
                          model="Llama-3.1-70B")
    session.commit()
    assert again.n_imported == 3
    assert len(session.execute(select(Label.id)).all()) == 3


def test_import_delphi_errors_say_what_is_wrong(session, tmp_path):
    seeded = create_sae(session, with_examples=False)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "layers.6_latent0.txt").write_text("Names of cities")  # not JSON
    with pytest.raises(ConfigError, match="not JSON .*JSON string"):
        import_labels(session, fmt="delphi", path=broken, sae_id=seeded.sae_id)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no delphi explanation files"):
        import_labels(session, fmt="delphi", path=empty, sae_id=seeded.sae_id)
    far = tmp_path / "far"
    write_explanations(far, {"layers.6_latent99.txt": "beyond the stored features"})
    with pytest.raises(NotFoundError, match="1 of 1 features are not stored .*: 99"):
        import_labels(session, fmt="delphi", path=far, sae_id=seeded.sae_id)
