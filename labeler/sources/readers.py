"""Stream text out of dataset sources as (piece, ends_document) pairs, failing with specific messages.

Every reader streams: nothing reads a whole file or split into memory, so packing can stop as soon as it
has enough tokens. Long texts come in pieces of at most MAX_PIECE_CHARS, cut at whitespace where there
is some, so a single 100 MB line neither exhausts memory nor stalls the tokenizer.
"""

from __future__ import annotations

import codecs
import json
import re
from pathlib import Path
from typing import Iterable, Iterator

from labeler.errors import DatasetError
from labeler.sources import builtin_corpus

Piece = tuple[str, bool]  # (text, whether a document ends after it)

FILE_SUFFIXES = (".txt", ".jsonl", ".parquet")
MAX_PIECE_CHARS = 32_768
_READ_BYTES = 1 << 20
_SURROGATES = re.compile("[\ud800-\udfff]")


def iter_pieces(spec: str, *, text_field: str = "text") -> Iterator[Piece]:
    """Dispatch on the spec: builtin corpus, local file or folder, else a Hugging Face dataset."""
    if spec in builtin_corpus.BUILTIN_ALIASES:
        return _split_documents(builtin_corpus.iter_documents())
    if spec.startswith("hf:"):
        return _iter_hf(spec[3:], text_field)
    path = Path(spec).expanduser()
    if path.exists() or path.is_symlink() or looks_like_path(spec):
        return _iter_local(path, text_field)
    return _iter_hf(spec, text_field)


def looks_like_path(spec: str) -> bool:
    """A spec that is meant as a local path, so a typo says 'missing' instead of asking the hub."""
    return spec.startswith(("/", ".", "~")) or spec.endswith(FILE_SUFFIXES + (".json", ".csv", ".gz"))


def local_files(path: Path) -> list[Path]:
    """The files a local spec names: itself, or the dataset files under a folder in sorted order."""
    if path.is_symlink() and not path.exists():
        raise DatasetError(f"dataset path {path} is a broken link")
    if not path.exists():
        raise DatasetError(f"dataset path {path} does not exist")
    if path.is_dir():
        try:
            files = sorted(p for p in path.rglob("*") if p.suffix in FILE_SUFFIXES and p.is_file())
        except OSError as exc:
            raise DatasetError(f"cannot list dataset folder {path}: {exc.strerror or exc}") from exc
        if not files:
            raise DatasetError(f"dataset folder {path} holds no {', '.join(FILE_SUFFIXES)} files")
        return files
    if path.suffix not in FILE_SUFFIXES:
        raise DatasetError(f"dataset file {path} has suffix {path.suffix or '(none)'!r}; "
                           f"use {', '.join(FILE_SUFFIXES)} or a folder of them")
    return [path]


def _iter_local(path: Path, text_field: str) -> Iterator[Piece]:
    for file in local_files(path):
        try:
            if file.suffix == ".txt":
                yield from _iter_txt(file)
            elif file.suffix == ".jsonl":
                yield from _iter_jsonl(file, text_field)
            else:
                yield from _iter_parquet(file, text_field)
        except OSError as exc:
            raise DatasetError(f"cannot read dataset file {file}: {exc.strerror or exc}") from exc


def _iter_txt(file: Path) -> Iterator[Piece]:
    """A .txt file is one document, decoded as strict UTF-8 in 1 MB reads."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0  # bytes of the file handed to the decoder so far
    pending = ""
    with file.open("rb") as handle:
        while True:
            chunk = handle.read(_READ_BYTES)
            final = not chunk
            buffered = len(decoder.getstate()[0])
            try:
                text = decoder.decode(chunk, final=final)
            except UnicodeDecodeError as exc:
                raise _not_utf8(file, offset - buffered + exc.start, exc) from exc
            offset += len(chunk)
            pending += text
            while len(pending) > MAX_PIECE_CHARS:
                piece, pending = _cut(pending)
                yield piece, False
            if final:
                break
    yield pending, True


def _iter_jsonl(file: Path, text_field: str) -> Iterator[Piece]:
    """Each non-blank line is a JSON object whose `text_field` string is one document."""
    offset = 0
    with file.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _not_utf8(file, offset + exc.start, exc, line=number) from exc
            offset += len(raw)
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{file} line {number} is not JSON ({exc.msg} at column {exc.colno})") from exc
            yield from _split_documents([_text_of(record, text_field, f"{file} line {number}")])


def _iter_parquet(file: Path, text_field: str) -> Iterator[Piece]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(file)
    except (pa.ArrowException, ValueError) as exc:
        raise DatasetError(f"{file} is not a readable parquet file: {exc}") from exc
    columns = parquet.schema_arrow.names
    if text_field not in columns:
        raise DatasetError(f"{file} has no column {text_field!r} (columns: {', '.join(columns)}); "
                           "choose one with --text-field")
    field_type = parquet.schema_arrow.field(text_field).type
    if not (pa.types.is_string(field_type) or pa.types.is_large_string(field_type)):
        raise DatasetError(f"{file} column {text_field!r} has type {field_type}, not string")
    try:
        for batch in parquet.iter_batches(columns=[text_field], batch_size=1024):
            texts = [t for t in batch.column(0).to_pylist() if t is not None]
            yield from _split_documents(_clean(t) for t in texts)
    except (pa.ArrowException, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {file} column {text_field!r}: {exc}") from exc


def _iter_hf(name: str, text_field: str) -> Iterator[Piece]:
    """`NAME`, `NAME:split` or `NAME:config:split` from the Hugging Face hub, streamed."""
    import datasets

    parts = name.split(":")
    if not parts[0] or len(parts) > 3:
        raise DatasetError(f"dataset spec {name!r} not understood; use hf:NAME, hf:NAME:split or hf:NAME:config:split")
    config = parts[1] if len(parts) == 3 else None
    split = parts[-1] if len(parts) > 1 else "train"
    try:
        stream = datasets.load_dataset(parts[0], config, split=split, streaming=True)
        rows = enumerate(iter(stream), start=1)
    except Exception as exc:  # hub, network and builder errors come in many types
        raise DatasetError(
            f"cannot open Hugging Face dataset {name!r}: {exc} (a local path that does not exist? "
            "offline? HF_HUB_OFFLINE=1 only finds cached datasets)"
        ) from exc
    number = 0
    while True:
        try:
            number, row = next(rows)
        except StopIteration:
            return
        except Exception as exc:  # a stream can fail mid-way on network or decoding errors
            raise DatasetError(f"reading Hugging Face dataset {name!r} failed after row {number}: {exc}") from exc
        yield from _split_documents([_text_of(row, text_field, f"{name} row {number}")])


def _text_of(record: object, text_field: str, where: str) -> str:
    if not isinstance(record, dict):
        raise DatasetError(f"{where} is a JSON {type(record).__name__}, not an object with a {text_field!r} field")
    if text_field not in record:
        keys = ", ".join(map(str, list(record)[:10])) or "none"
        raise DatasetError(f"{where} has no {text_field!r} field (fields: {keys}); choose one with --text-field")
    value = record[text_field]
    if not isinstance(value, str):
        raise DatasetError(f"{where} field {text_field!r} is {type(value).__name__}, not a string")
    return _clean(value)


def _clean(text: str) -> str:
    """Lone surrogates (legal in JSON escapes, illegal in UTF-8) become U+FFFD so tokenizers accept them."""
    return _SURROGATES.sub("\ufffd", text) if _SURROGATES.search(text) else text


def _split_documents(documents: Iterable[str]) -> Iterator[Piece]:
    for document in documents:
        while len(document) > MAX_PIECE_CHARS:
            piece, document = _cut(document)
            yield piece, False
        yield document, True


def _cut(text: str) -> tuple[str, str]:
    """Split before MAX_PIECE_CHARS at the last whitespace, or hard at the limit if there is none."""
    space = text.rfind(" ", MAX_PIECE_CHARS // 2, MAX_PIECE_CHARS)
    at = space + 1 if space > 0 else MAX_PIECE_CHARS
    return text[:at], text[at:]


def _not_utf8(file: Path, byte_offset: int, exc: UnicodeDecodeError, line: int | None = None) -> DatasetError:
    bad = exc.object[exc.start:exc.start + 4].hex(" ")
    where = f" (line {line})" if line is not None else ""
    return DatasetError(
        f"{file} is not UTF-8: invalid byte(s) {bad} at byte offset {byte_offset}{where}; "
        "convert it, e.g. iconv -f latin1 -t utf-8"
    )
