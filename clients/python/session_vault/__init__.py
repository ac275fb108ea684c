# SPDX-License-Identifier: Apache-2.0
"""session-vault client: storage engines that keep a Telegram client's session, peers cache and
update state in session-vault, under an exclusive lease.

* ``session_vault.pyrogram.VaultStorage``  (Pyrogram 2.0, Kurigram, Pyrofork)
* ``session_vault.hydrogram.VaultStorage`` (Hydrogram)
* ``session_vault.telethon.VaultSession``  (Telethon 1.x)

The library modules are imported on demand, so ``import session_vault`` needs none of them.
"""

from .errors import LeaseHeld, LeaseLost, SessionVaultError, UnsupportedLibrary

__version__ = "0.1.0"

__all__ = ["SessionVaultError", "LeaseHeld", "LeaseLost", "UnsupportedLibrary", "__version__"]
