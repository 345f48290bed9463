"""Write template/runtime/FILES.sha256: the hash of every runtime file, which each generated
plugin checks its runtime/ against (`bin/<id> --check`, the pack, the pre-commit hook).

    python3 dev.py hashes

Run it after changing anything under template/runtime/; tests/runtime/test_integrity.py
fails while the listing is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

RUNTIME = Path(__file__).resolve().parent.parent / "template" / "runtime"
sys.path.insert(0, str(RUNTIME / "src"))

from nexo_plugin_runtime.integrity import HASHES_FILE, hashes_listing  # noqa: E402


def main() -> int:
    listing = hashes_listing(str(RUNTIME))
    target = RUNTIME / HASHES_FILE
    if target.exists() and target.read_text(encoding="utf-8") == listing:
        print(f"{target.relative_to(RUNTIME.parent.parent)} is up to date")
        return 0
    target.write_text(listing, encoding="utf-8")
    print(f"wrote {target.relative_to(RUNTIME.parent.parent)} ({listing.count(chr(10))} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
