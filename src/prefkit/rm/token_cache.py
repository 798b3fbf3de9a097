"""Rendered token ids kept on disk (`data.token_cache`), so that the folds of `prefkit cv`, `train`, `predict`,
`repredict`, the probes and a rerun tokenise each row once.

What a cached sequence is keyed by, in two parts:

- the settings: one folder per SHA-256 of everything besides the row that changes the ids (`Renderer` gives
  them: a hash of the tokenizer's own JSON, the layout, every `template.*` field but the tokenizer's name, the
  character cap, the `tokenizers` version, and the source of `prefkit.rm.templates` itself, so that a change
  to the rendering code cannot serve stale ids) and `FORMAT_VERSION`;
- the row: 16 bytes of SHA-256 over the texts the sequence is rendered from, in the order rendered ((prompt,
  A, B); (prompt, B, A) for the swapped pair; (prompt, response) for one response), each turn length-prefixed.

Rows are keyed by their own text, not by the data file's hash: a fold is a subset of a table, a table may be
built in memory (pseudo-labels joined, `data.limit`, a converted copy of the same file), and a swapped pair is
simply another sequence; keyed by content, each of them finds every sequence rendered before, from any file.

Each call that renders new sequences writes them as one shard, `<folder>/<hash of their keys>.parquet`
(row_key fixed_size_binary(16), input_ids large_list<int32>, cut int16: texts cut in characters before
tokenising), through `prefkit.io.atomic_path`: a reader sees a whole shard or none, and two processes that render
the same rows (two DDP ranks, two runs) write the same name with the same content. A shard that cannot be read
(truncated, not parquet, another folder's) is a miss: it is removed and its rows are rendered and written again.
A cache that cannot be written is said once and rendering goes on without it.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from prefkit.core.dist import log
from prefkit.errors import PrefkitError

FORMAT_VERSION = 1  # raise when what a shard holds, or how a key is made, changes
ENV = "PREFKIT_TOKEN_CACHE"  # data.token_cache=auto: this folder, when set
KEY_BYTES = 16
_LEN = struct.Struct("<q")
_NONE = _LEN.pack(-1)  # a null turn, distinct from an empty string (length 0)
_META = b"prefkit_token_cache"


def folder_for(setting: str | None) -> Path | None:
    """The cache root that `data.token_cache` names: "auto" is $PREFKIT_TOKEN_CACHE when set, else
    $XDG_CACHE_HOME/prefkit/tokens (~/.cache/prefkit/tokens); null or "off": no cache; anything else a folder."""
    if setting is None or setting.strip().lower() in ("", "off", "none", "null"):
        return None
    if setting == "auto":
        if os.environ.get(ENV):
            return Path(os.environ[ENV]).expanduser()
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        return Path(base) / "prefkit" / "tokens"
    return Path(setting).expanduser()


def row_keys(rows: Iterable[Sequence[Any]]) -> list[bytes]:
    """One key per row: the texts of its parts (each a list of turns; a turn a string or None), in order."""
    out = []
    for row in rows:
        h = hashlib.sha256()
        for turns in row:
            h.update(_LEN.pack(len(turns)))
            for t in turns:
                if t is None:
                    h.update(_NONE)
                else:
                    b = t.encode("utf-8", "surrogatepass")
                    h.update(_LEN.pack(len(b)))
                    h.update(b)
        out.append(h.digest()[:KEY_BYTES])
    return out


class TokenCache:
    """The shards of one set of rendering settings (`settings`: JSON-able values, see the module's docstring)."""

    def __init__(self, root: Path, settings: dict[str, Any]):
        self.settings = {"format": FORMAT_VERSION, **settings}
        self.key = hashlib.sha256(json.dumps(self.settings, sort_keys=True, ensure_ascii=True).encode()).hexdigest()
        self.folder = Path(root) / self.key[:32]
        self.writable = True

    def _schema(self):
        import pyarrow as pa

        return pa.schema([("row_key", pa.binary(KEY_BYTES)), ("input_ids", pa.large_list(pa.int32())),
                          ("cut", pa.int16())], metadata={_META: self.key.encode()})

    def get(self, keys: set[bytes]) -> dict[bytes, tuple[np.ndarray, int]]:
        """Of `keys`, those some shard holds: key -> (input ids, texts cut). Unreadable shards are removed."""
        found: dict[bytes, tuple[np.ndarray, int]] = {}
        if not keys or not self.folder.is_dir():
            return found
        import pyarrow as pa

        wanted = pa.array(list(keys), pa.binary(KEY_BYTES))
        for path in sorted(self.folder.glob("*.parquet")):
            if len(found) == len(keys):
                break
            try:
                found.update(self._read(path, wanted))
            except (OSError, ValueError, pa.ArrowException) as e:  # ArrowInvalid is a ValueError too
                log(f"token cache: {path} cannot be read ({e}); its rows are rendered again")
                path.unlink(missing_ok=True)
        return found

    def _read(self, path: Path, wanted) -> dict[bytes, tuple[np.ndarray, int]]:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        shard = pq.ParquetFile(path)
        schema = shard.schema_arrow
        ours = (schema.metadata or {}).get(_META) == self.key.encode()
        if not ours or not schema.equals(self._schema(), check_metadata=False):
            raise ValueError("not a shard of these settings")
        mask = pc.is_in(shard.read(columns=["row_key"]).column(0), value_set=wanted)
        if not pc.any(mask).as_py():
            return {}
        table = shard.read().filter(mask)
        ids = table.column("input_ids").combine_chunks()
        offsets = ids.offsets.to_numpy()
        flat = np.array(ids.flatten().to_numpy(zero_copy_only=False), dtype=np.int32)  # one writable copy
        arrays = np.split(flat, offsets[1:-1] - offsets[0])
        keys = table.column("row_key").to_pylist()
        cuts = table.column("cut").to_pylist()
        if len(arrays) != len(keys):
            raise ValueError(f"{len(arrays)} sequences for {len(keys)} keys")
        return {k: (a, c) for k, a, c in zip(keys, arrays, cuts)}

    def put(self, keys: list[bytes], ids: list[np.ndarray], cuts: list[int]) -> None:
        """Write newly rendered sequences as one shard (atomically); a cache that cannot be written is said once."""
        if not keys or not self.writable:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        from prefkit.io import atomic_path, write_json

        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        values = np.concatenate(ids).astype(np.int32, copy=False)
        table = pa.Table.from_arrays(
            [pa.array(keys, pa.binary(KEY_BYTES)), pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values)),
             pa.array(cuts, pa.int16())], schema=self._schema())
        name = hashlib.sha256(b"".join(sorted(keys))).hexdigest()[:32] + ".parquet"
        try:
            with atomic_path(self.folder / name) as tmp:
                pq.write_table(table, tmp, compression="zstd")
            if not (self.folder / "settings.json").is_file():  # what the folder's name stands for, for a person
                write_json(self.folder / "settings.json", self.settings)
        except (OSError, PrefkitError) as e:
            self.writable = False
            log(f"token cache: cannot write under {self.folder} ({e}); rendering goes on without the cache "
                "(data.token_cache=null turns it off)")
