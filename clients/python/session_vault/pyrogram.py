# SPDX-License-Identifier: Apache-2.0
"""``VaultStorage`` for the libraries imported as ``pyrogram``: Pyrogram 2.0.x, Kurigram 2.x and
Pyrofork 2.x (detected from the installed library; anything else is refused with
``UnsupportedLibrary`` when a VaultStorage is made).

    Pyrogram 2.0:  client = Client("bot", api_id, api_hash); client.storage = VaultStorage("bot")
    Kurigram:      Client("bot", api_id, api_hash, storage_engine=VaultStorage("bot"))
    Pyrofork:      Client("bot", api_id, api_hash, storage=VaultStorage("bot"))
"""

from __future__ import annotations

from typing import Any, Optional

import pyrogram as _lib
from pyrogram.storage import Storage as _Base

from ._pyrogram_family import build

VaultStorage: Any = build("pyrogram", _lib, _Base)
FLAVOUR: Optional[str] = VaultStorage._flavour

__all__ = ["VaultStorage", "FLAVOUR"]
