"""Reading and writing tab-separated files with a header, with errors that name file, line, field."""
from __future__ import annotations

import csv
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from guanxi.features.schema import Origin, SchemaError

_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f", ""}


def read_tsv(path: str | Path, required: tuple[str, ...], optional: tuple[str, ...] = (),
             sep: str = "\t") -> tuple[pd.DataFrame, Origin]:
    """Read a file with one header line into string columns.

    Args:
        path: the file.
        required: column names that must be in the header.
        optional: further column names that may be there; any other name is an error.
        sep: the field separator.

    Returns:
        the table (all columns as strings, missing fields as NaN) and its :class:`Origin`
        (row 0 is line 2).
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise SchemaError(source, None, None, "no such file")
    with open(path, encoding="utf-8", newline="") as f:
        header = f.readline().rstrip("\r\n").split(sep)
    header = [h.strip() for h in header]
    for col in required:
        if col not in header:
            raise SchemaError(source, 1, col, f"missing column in header {header}; "
                              f"required {list(required)}, optional {list(optional)}")
    for col in header:
        if col not in required and col not in optional:
            raise SchemaError(source, 1, col, f"unknown column; valid columns are "
                              f"{list(required) + list(optional)}")
    try:
        # header=None so that the header fixes the field count: a longer row is then a parser
        # error with its true line number instead of being taken for an index column.
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[],
                         quoting=csv.QUOTE_NONE, engine="c", header=None, skip_blank_lines=False)
    except pd.errors.ParserError as exc:
        raise SchemaError(source, _line_from_parser(str(exc)), None, f"malformed row: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise SchemaError(source, None, None, f"not UTF-8 text: {exc}") from exc
    df.columns = header
    df = df.iloc[1:].reset_index(drop=True)
    origin = Origin(source, first_line=2)
    for col in required:
        missing = df[col].isna().to_numpy() | (df[col].astype(str).str.strip() == "").to_numpy()
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise SchemaError(source, origin.line(row), col, "missing value")
    return df, origin


def _line_from_parser(message: str) -> int | None:
    # pandas says "Expected 2 fields in line 5, saw 3"; its line count includes the header.
    words = message.replace(",", " ").split()
    for i, w in enumerate(words[:-1]):
        if w == "line" and words[i + 1].isdigit():
            return int(words[i + 1])
    return None


def parse_int(values: pd.Series, field: str, origin: Origin) -> pd.Series:
    """Strings to nullable Int64; empty stays missing; anything else non-integer is an error."""
    text = values.fillna("").astype(str).str.strip()
    empty = (text == "").to_numpy()
    num = pd.to_numeric(text.where(~empty, None), errors="coerce")
    bad = (~empty) & (num.isna().to_numpy() | (np.asarray(num.fillna(0)) % 1 != 0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise SchemaError(origin.source, origin.line(row), field,
                          f"not an integer: {values.iloc[row]!r}")
    return pd.array(num.to_numpy(dtype="float64"), dtype="Float64").astype("Int64")


def parse_float(values: pd.Series, field: str, origin: Origin) -> np.ndarray:
    """Strings to float64; empty is NaN; anything else non-numeric or non-finite is an error."""
    text = values.fillna("").astype(str).str.strip()
    empty = (text == "").to_numpy()
    num = pd.to_numeric(text.where(~empty, None), errors="coerce").to_numpy(dtype="float64")
    bad = (~empty) & ~np.isfinite(num)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise SchemaError(origin.source, origin.line(row), field,
                          f"not a finite number: {values.iloc[row]!r}")
    return num


def parse_bool(values: pd.Series, field: str, origin: Origin) -> np.ndarray:
    text = values.fillna("").astype(str).str.strip().str.lower()
    is_true = text.isin(_TRUE).to_numpy()
    bad = ~(is_true | text.isin(_FALSE).to_numpy())
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise SchemaError(origin.source, origin.line(row), field,
                          f"not a boolean: {values.iloc[row]!r} (use true/false)")
    return is_true


def write_tsv(df: pd.DataFrame, path: Path) -> None:
    """Write ``df`` with a header; missing values as empty fields."""
    df.to_csv(path, sep="\t", index=False, na_rep="", quoting=csv.QUOTE_NONE, lineterminator="\n")


class AtomicDir:
    """Write a directory completely or not at all: files go to a sibling temporary folder
    that replaces ``target`` only when the ``with`` block ends without an error."""

    def __init__(self, target: str | Path, overwrite: bool = True) -> None:
        self.target = Path(target)
        self.overwrite = overwrite
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        if self.target.exists() and not self.overwrite:
            raise FileExistsError(f"{self.target} exists; refusing to overwrite it")
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.", dir=self.target.parent))
        self.tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary folder
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.tmp is not None
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        old = None
        if self.target.exists():
            old = self.target.with_name(f".{self.target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.target, old)
        os.replace(self.tmp, self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
