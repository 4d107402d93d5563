"""File helpers shared by the fixture scripts: digests and atomic JSON writes."""
import hashlib
import json
import os


def sha256(path):
    """Hex SHA-256 of the file at `path` (what Popper's fixtures are keyed by)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(path, doc, indent=None):
    """Writes `doc` to `path` through a temp file and a rename (never a half-written file)."""
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f, indent=indent, separators=None if indent else (",", ":"))
        f.write("\n")
    os.replace(path + ".tmp", path)
