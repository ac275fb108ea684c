# SPDX-License-Identifier: Apache-2.0
"""``VaultStorage`` for Hydrogram 0.x, a subclass of its ``BaseStorage``:

    Client("bot", api_id, api_hash, session_storage_engine=VaultStorage("bot"))
"""

from __future__ import annotations

from typing import Any, Optional

import hydrogram as _lib
from hydrogram.storage import BaseStorage as _Base

from ._pyrogram_family import build

VaultStorage: Any = build("hydrogram", _lib, _Base)
FLAVOUR: Optional[str] = VaultStorage._flavour

__all__ = ["VaultStorage", "FLAVOUR"]
