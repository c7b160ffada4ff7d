"""What an id may be: one definition for every endpoint and every loader.

An id (user, item, friend, owner, event) is opaque text that must be:
- printable: no control characters (NUL, newlines, tabs, escape), no format characters (the
  bidirectional overrides and isolates that make ``abc`` display as ``cba``, zero-width joiners),
  no line or paragraph separators, and no space other than the plain ASCII space inside it;
- trimmed and non-empty: no leading or trailing whitespace, and not whitespace only;
- at most :data:`MAX_ID_LENGTH` characters.

"Printable" is Python's ``str.isprintable``: every character outside the Unicode categories
"Other" (Cc, Cf, Cs, Co, Cn) and "Separator" (Zl, Zp, Zs), the ASCII space excepted. PostgreSQL
refuses NUL in text, terminals and logs mangle the rest, and an id that differs from another only by
an invisible character is a spoofing tool, so every edge refuses them with the field named.
Loaders trim the fields of a file before the check (a file's ``u1 `` is ``u1``); HTTP bodies are
not trimmed but refused, since an id the service silently changed would name another user.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

MAX_ID_LENGTH = 256

DESCRIPTION = (f"an id: printable text of 1 to {MAX_ID_LENGTH} characters, without leading or trailing "
               "whitespace and without control, format (such as bidirectional overrides) or separator "
               "characters other than the plain space")


def id_problem(value: object) -> str | None:
    """Why ``value`` is not a valid id (a phrase to follow the field's name), or None when it is."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value.strip():
        return "is empty" if not value else f"is whitespace only ({value!r})"
    if len(value) > MAX_ID_LENGTH:
        return f"has {len(value)} characters, above the limit of {MAX_ID_LENGTH}"
    if value != value.strip():
        return f"has leading or trailing whitespace ({value!r})"
    if not value.isprintable():
        pos, char = next((i, c) for i, c in enumerate(value) if not c.isprintable())
        return f"contains the non-printable character U+{ord(char):04X} at position {pos} ({value!r})"
    return None


def check_id(value: object, field: str = "id") -> str:
    """``value`` when it is a valid id.

    Raises:
        ValueError: ``"<field> <problem>"``, e.g. ``user_id contains the non-printable character U+0000``.
    """
    problem = id_problem(value)
    if problem is not None:
        raise ValueError(f"{field} {problem}")
    return value  # type: ignore[return-value]


def first_bad_id(values: pd.Series) -> tuple[int, str] | None:
    """``(row, problem)`` of the first invalid id in ``values`` (missing values are not checked
    here: loaders report them as missing), or None when every id is valid.

    Each distinct id is checked once, so a table of millions of rows costs its distinct ids.
    """
    present = values[values.notna()]
    if not len(present):
        return None
    uniq = pd.unique(present.astype(str).to_numpy(dtype=object))
    text = pd.Series(uniq, dtype=object)
    ok = (text.str.len() <= MAX_ID_LENGTH) & (text.str.strip() == text) & (text.str.len() > 0)
    ok &= text.map(str.isprintable).astype(bool)
    if bool(ok.all()):
        return None
    bad = set(text[~ok.to_numpy()].tolist())
    hits = present.astype(str).isin(bad).to_numpy()
    row = int(np.flatnonzero(values.notna().to_numpy())[np.flatnonzero(hits)[0]])
    return row, id_problem(str(values.iloc[row])) or "is not a valid id"
