import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from labeler.errors import DatasetError
from labeler.sources import load_dataset
from labeler.sources.readers import MAX_PIECE_CHARS

PROSE = "The quick brown fox jumps over the lazy dog while the cat watches from the window. " * 20


def test_builtin_corpus_packs_full_sequences(minilm):
    data = load_dataset("builtin", minilm, context_size=64, n_tokens=64 * 40)
    assert data.tokens.shape == (40, 64) and data.tokens.dtype == torch.long
    assert data.n_tokens == 2560 and data.n_sequences == 40
    assert (data.tokens[:, 0] == 101).all()  # every row starts with [CLS]
    assert (data.tokens[:, 1:] == 102).any()  # documents separated by [SEP]
    assert not (data.tokens[:, 1:] == 101).any() and not (data.tokens == 0).any()  # no stray CLS, no padding
    assert data.name == "builtin:python-docs"
    fields = data.store_fields()
    assert fields["tokenizer"] == "sentence-transformers/all-MiniLM-L6-v2" and fields["n_sequences"] == 40


def test_builtin_is_deterministic_and_hash_tracks_content(minilm):
    first = load_dataset("builtin:python-docs", minilm, context_size=32, n_tokens=320)
    again = load_dataset("builtin", minilm, context_size=32, n_tokens=320)
    longer = load_dataset("builtin", minilm, context_size=32, n_tokens=640)
    assert first.content_hash == again.content_hash and torch.equal(first.tokens, again.tokens)
    assert torch.equal(longer.tokens[:10], first.tokens)
    assert longer.content_hash != first.content_hash


def test_n_tokens_rounds_up_to_whole_sequences(minilm):
    assert load_dataset("builtin", minilm, context_size=32, n_tokens=33).n_sequences == 2


def test_shards_are_contiguous_and_cover_everything(minilm):
    data = load_dataset("builtin", minilm, context_size=16, n_tokens=16 * 10)
    shards = [data.shard(i, 3) for i in range(3)]
    assert shards == [(0, 3), (3, 6), (6, 10)]
    with pytest.raises(ValueError):
        data.shard(3, 3)


def test_txt_jsonl_parquet_and_folder(minilm, tmp_path):
    (tmp_path / "a.txt").write_text(PROSE, encoding="utf-8")
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps({"text": PROSE, "id": i}) for i in range(2)) + "\n\n")
    pq.write_table(pa.table({"body": [PROSE, None, PROSE]}), tmp_path / "c.parquet")
    txt = load_dataset(str(tmp_path / "a.txt"), minilm, context_size=32)
    jsonl = load_dataset(str(tmp_path / "b.jsonl"), minilm, context_size=32)
    parquet = load_dataset(str(tmp_path / "c.parquet"), minilm, context_size=32, text_field="body")
    assert txt.name == "a.txt" and txt.source == str(tmp_path / "a.txt")
    n_prose = len(minilm.tokenizer(PROSE, add_special_tokens=False)["input_ids"])
    assert txt.n_sequences == n_prose // 31
    assert jsonl.n_sequences == (2 * n_prose + 1) // 31  # two documents and one separator
    assert parquet.n_sequences == jsonl.n_sequences
    assert torch.equal(jsonl.tokens, parquet.tokens)
    (tmp_path / "c.parquet").unlink()
    folder = load_dataset(str(tmp_path), minilm, context_size=32)
    assert folder.n_sequences == (3 * n_prose + 2) // 31  # a.txt then b.jsonl, sorted


def test_text_from_txt_decodes_back(minilm, tmp_path):
    (tmp_path / "a.txt").write_text("Sparse autoencoders find features. " * 12, encoding="utf-8")
    data = load_dataset(str(tmp_path / "a.txt"), minilm, context_size=16)
    text = minilm.tokenizer.decode(data.tokens[0])
    assert text.startswith("[CLS] sparse autoencoders find features. sparse auto")
    assert len(data.tokens[0]) == 16


def test_missing_path(minilm, tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(str(tmp_path / "nope.txt"), minilm)


@pytest.mark.parametrize("content", ["", "   \n\t\n  "])
def test_empty_dataset(minilm, tmp_path, content):
    (tmp_path / "empty.txt").write_text(content)
    with pytest.raises(DatasetError, match="empty dataset"):
        load_dataset(str(tmp_path / "empty.txt"), minilm)


def test_too_short_for_one_sequence(minilm, tmp_path):
    (tmp_path / "short.txt").write_text("just a few words")
    with pytest.raises(DatasetError, match="yields only 4 tokens, fewer than one sequence of 128"):
        load_dataset(str(tmp_path / "short.txt"), minilm)


def test_folder_without_dataset_files(minilm, tmp_path):
    (tmp_path / "notes.md").write_text(PROSE)
    with pytest.raises(DatasetError, match=r"holds no \.txt"):
        load_dataset(str(tmp_path), minilm)


def test_unsupported_suffix(minilm, tmp_path):
    (tmp_path / "data.csv").write_text("text\nhello\n")
    with pytest.raises(DatasetError, match="suffix '.csv'"):
        load_dataset(str(tmp_path / "data.csv"), minilm)


def test_unreadable_file(minilm, tmp_path):
    # Reading /proc/self/mem at offset 0 fails with EIO even for root, unlike a chmod 000 file.
    os.symlink("/proc/self/mem", tmp_path / "mem.txt")
    with pytest.raises(DatasetError, match="cannot read dataset file .*mem.txt: Input/output error"):
        load_dataset(str(tmp_path / "mem.txt"), minilm)


def test_broken_link(minilm, tmp_path):
    os.symlink(tmp_path / "gone.txt", tmp_path / "link.txt")
    with pytest.raises(DatasetError, match="broken link"):
        load_dataset(str(tmp_path / "link.txt"), minilm)


def test_non_utf8_txt_names_file_and_offset(minilm, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(("a" * 1500).encode() + "café au lait".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"latin1.txt is not UTF-8: invalid byte\(s\) e9 .* at byte offset 1503"):
        load_dataset(str(path), minilm)


def test_non_utf8_across_read_boundary(minilm, tmp_path):
    path = tmp_path / "split.txt"
    # A valid 2-byte char straddles the 1 MB read boundary, then a bad byte follows later.
    body = b"a" * ((1 << 20) - 1) + "é".encode() + b" ok " + b"\xff"
    path.write_bytes(body)
    with pytest.raises(DatasetError, match=f"at byte offset {len(body) - 1}"):
        load_dataset(str(path), minilm)


def test_non_utf8_jsonl_names_line(minilm, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl is not UTF-8: .* at byte offset 30 \(line 2\)"):
        load_dataset(str(path), minilm)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"line 2 is not JSON"),
        ('{"body": "x"}', r"line 2 has no 'text' field \(fields: body\)"),
        ('{"text": 42}', r"line 2 field 'text' is int, not a string"),
        ('["text"]', r"line 2 is a JSON list"),
    ],
)
def test_bad_jsonl(minilm, tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"text": PROSE}) + "\n" + line + "\n")
    with pytest.raises(DatasetError, match=message):
        load_dataset(str(path), minilm)


def test_parquet_without_the_column(minilm, tmp_path):
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "d.parquet")
    with pytest.raises(DatasetError, match=r"no column 'text' \(columns: body\)"):
        load_dataset(str(tmp_path / "d.parquet"), minilm)


def test_not_a_parquet_file(minilm, tmp_path):
    (tmp_path / "d.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(DatasetError, match="not a readable parquet file"):
        load_dataset(str(tmp_path / "d.parquet"), minilm)


def test_hostile_text_simply_tokenizes(minilm, tmp_path):
    hostile = [
        "<script>alert('x')</script><img src=x onerror=alert(1)> <b>bold</b>",
        "control \x00\x01\x07\x1b[31m chars \u200b\u200d\ufeff",
        "right-to-left \u202e\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd \u202c",
        "lone surrogate \ud800 and emoji \U0001f600 and combining e\u0301\u0301\u0301",
        "x" * (3 * MAX_PIECE_CHARS + 17),  # one huge line with no whitespace
        "word " * 50_000,
        "'; DROP TABLE features; --",
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in hostile), encoding="utf-8")
    data = load_dataset(str(path), minilm, context_size=64)
    assert data.n_sequences > 100
    assert int(data.tokens.max()) < len(minilm.tokenizer)
    (tmp_path / "huge.txt").write_text("\n".join(t for t in hostile if "\ud800" not in t), encoding="utf-8")
    assert load_dataset(str(tmp_path / "huge.txt"), minilm, context_size=64).n_sequences > 100


def test_unknown_hub_dataset_offline(minilm, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DatasetError, match="cannot open Hugging Face dataset"):
        load_dataset("hf:no-such-org/no-such-dataset-xyz", minilm)


def test_one_separator_between_documents_even_across_blank_ones(minilm, tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in ["alpha beta", "   ", "", "gamma"]))
    data = load_dataset(str(path), minilm, context_size=5)
    assert minilm.tokenizer.convert_ids_to_tokens(data.tokens[0]) == ["[CLS]", "alpha", "beta", "[SEP]", "gamma"]
