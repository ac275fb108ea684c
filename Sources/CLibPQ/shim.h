// SPDX-License-Identifier: Apache-2.0
#pragma once
// Types and constants only: libpq itself is loaded with dlopen when a PostgreSQL store opens
// (Sources/VaultCore/Storage/LibPQ.swift), so nothing here is linked. Debian keeps the header
// in /usr/include/postgresql (libpq-dev), other systems in the include path itself.
#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>
#endif
