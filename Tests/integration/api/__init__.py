# SPDX-License-Identifier: Apache-2.0
"""End-to-end API tests against the real session-vault binary (package so its conftest gets a unique name)."""
