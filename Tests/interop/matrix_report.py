# SPDX-License-Identifier: Apache-2.0
"""Matrix results: counting, baseline comparison, and docs/compatibility.md rendering."""

import collections
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def count(cells):
    return collections.Counter(c["status"] for c in cells)
