# SPDX-License-Identifier: Apache-2.0
"""The storage engine's behaviour against the in-process fake vault (library-shaped stubs stand in
for the libraries here; Tests/interop/test_storage_engines.py runs the real ones)."""

import asyncio
import base64
import logging

import pytest

import stub_libs
from conftest import KEY, TOKEN, pyrogram_string, wait_until
from session_vault import LeaseHeld, LeaseLost, SessionVaultError, UnsupportedLibrary
from session_vault._core import decode_pyrogram_string, decode_telethon_string
from session_vault._pyrogram_family import detect_flavour

run = asyncio.run


def engine(cls, vault, name="bot", **kw):
    kw.setdefault("flush_interval", 30.0)
    return cls(name, url=vault.url, token=TOKEN, **kw)


def seeded(vault, name="bot", **fields):
    s = vault.add_session(name, pyrogram_string(), **fields)
    s["peers"][5] = {"id": 5, "access_hash": 55, "type": "user", "usernames": ["Five"], "phone_number": "15550005",
                     "name": "Five"}
    s["peers"][-1000000000042] = {"id": -1000000000042, "access_hash": 4242, "type": "forum", "usernames": [],
                                  "phone_number": None, "name": None}
    s["states"][0] = {"id": 0, "pts": 10, "qts": 1, "date": 1700000000, "seq": 3}
    return s


def test_open_takes_the_lease_and_loads_everything(vault, monkeypatch):
    VaultStorage = stub_libs.make("pyrogram", monkeypatch)
    seeded(vault)
    st = engine(VaultStorage, vault, holder="host-a pid 1")

    async def go():
        await st.open()
        assert await st.dc_id() == 2 and await st.api_id() == 12345 and await st.auth_key() == KEY
        assert await st.user_id() == 777000 and await st.is_bot() is True and await st.test_mode() is False
        assert await st.get_peer_by_id(5) == stub_libs.InputPeerUser(5, 55)
        assert await st.get_peer_by_id(-1000000000042) == stub_libs.InputPeerChannel(42, 4242)
        assert await st.get_peer_by_username("five") == stub_libs.InputPeerUser(5, 55)
        assert await st.get_peer_by_phone_number("15550005") == stub_libs.InputPeerUser(5, 55)
        for missing in ("five", 6, "6", None):
            with pytest.raises(KeyError):
                await st.get_peer_by_id(missing)
        await st.close()

    lease_calls = []
    original = vault.lease

    def spy(method, *a):
        lease_calls.append(method)
        return original(method, *a)

    vault.lease = spy
    run(go())
    assert lease_calls[0] == "POST" and lease_calls[-1] == "DELETE"
    assert vault.sessions["bot"]["lease"] is None


def test_second_engine_fails_naming_the_holder_then_opens_after_close(vault, monkeypatch):
    VaultStorage = stub_libs.make("pyrogram", monkeypatch)
    seeded(vault)
    first = engine(VaultStorage, vault, holder="first-holder")
    second = engine(VaultStorage, vault, holder="second-holder")

    async def go():
        await first.open()
        with pytest.raises(LeaseHeld) as info:
            await second.open()
        assert info.value.holder == "first-holder" and "first-holder" in str(info.value)
        await first.close()
        await second.open()
        assert vault.current_lease("bot")["holder"] == "second-holder"
        await second.close()

    run(go())


def test_update_peers_is_memory_only_and_written_at_save(vault, monkeypatch):
    VaultStorage = stub_libs.make("pyrogram", monkeypatch)
    seeded(vault)
    st = engine(VaultStorage, vault)

    async def go():
        await st.open()
        before = len(vault.requests)
        await st.update_peers([(100, 1001, "bot", "SomeBot", None), (-77, 0, "group", None, None),
                               (-1000000000099, 999, "channel", "news", None)])
        assert await st.get_peer_by_username("somebot") == stub_libs.InputPeerUser(100, 1001)
        assert await st.get_peer_by_id(-77) == stub_libs.InputPeerChat(77)
        assert len(vault.requests) == before, "update_peers must not make an HTTP request"
        await st.save()
        puts = [r for r in vault.requests[before:] if r[0] == "PUT" and r[1].endswith("/peers")]
        assert len(puts) == 1 and puts[0][3] == st.core.lease_id
        await st.close()

    run(go())
    peers = vault.sessions["bot"]["peers"]
    assert peers[100]["usernames"] == ["SomeBot"] and peers[100]["type"] == "bot"
    assert peers[-1000000000099]["access_hash"] == 999
    assert peers[5]["name"] == "Five", "untouched peers keep what the vault had"

    reopened = engine(VaultStorage, vault)

    async def again():
        await reopened.open()
        assert await reopened.get_peer_by_id(100) == stub_libs.InputPeerUser(100, 1001)
        assert await reopened.get_peer_by_username("news") == stub_libs.InputPeerChannel(99, 999)
        await reopened.close()

    run(again())


def test_background_flush_within_the_interval_and_at_close(vault, monkeypatch):
    VaultStorage = stub_libs.make("pyrogram", monkeypatch)
    seeded(vault)
    st = engine(VaultStorage, vault, flush_interval=0.3)

    async def go():
        await st.open()
        await st.update_peers([(200, 2, "user", None, "15550200")])
        wait_until(lambda: 200 in vault.sessions["bot"]["peers"], 5, "the background flush")
        await st.update_peers([(201, 3, "user", None, None)])
        await st.close()

    run(go())
    assert 201 in vault.sessions["bot"]["peers"]


def test_many_peers_go_in_batches_of_1000(vault, monkeypatch):
    VaultStorage = stub_libs.make("pyrogram", monkeypatch)
    seeded(vault)
    st = engine(VaultStorage, vault)

    async def go():
        await st.open()
        await st.update_peers([(1000 + i, i, "user", None, None) for i in range(2500)])
        await st.close()

    run(go())
    puts = [r for r in vault.requests if r[0] == "PUT" and r[1].endswith("/peers")]
    assert len(puts) == 3
    assert len(vault.sessions["bot"]["peers"]) == 2502


def test_long_non_latin_names_fit_the_vaults_body_and_name_limits(vault, monkeypatch):
    """Names as Telethon gives them (the display name): 1000 peers with 100-character Cyrillic
    names are a body over the vault's 256 KiB (413 for the whole batch, retried for ever), and a
    name over 256 UTF-8 bytes is refused (422, the whole batch). Every peer must still arrive, the
    long name cut at a character boundary, the batches split by size."""
    VaultStorage = stub_libs.make("pyrogram", monkeypatch)
    seeded(vault)
    st = engine(VaultStorage, vault)
    cyrillic = "Жёлтый лис " * 9 + "Ж"  # 100 characters: 182 UTF-8 bytes, 510 as JSON \u escapes
    too_long = "Щ" * 200  # 400 bytes: cut to 128 characters
    emoji = "\U0001F98A" * 63 + "ab"  # 254 bytes: fits as is

    async def go():
        await st.open()
        for i in range(2500):
            st.core.upsert_peer(1000 + i, access_hash=i, type="user", name=cyrillic)
        st.core.upsert_peer(9001, access_hash=1, name=too_long)
        st.core.upsert_peer(9002, access_hash=2, name=emoji)
        st.core.upsert_peer(9003, access_hash=3, name="a\ud800b")  # a lone surrogate: not UTF-8
        await st.save()
        assert st.core.pending() == 0
        await st.close()

    run(go())
    peers = vault.sessions["bot"]["peers"]
    assert len(peers) == 2505
    assert all(peers[1000 + i]["name"] == cyrillic for i in range(2500))
    assert peers[9001]["name"] == "Щ" * 128
    assert peers[9002]["name"] == emoji
    assert peers[9003]["name"] == "a?b"


def test_new_key_and_dc_are_written_at_once(vault, monkeypatch):
    VaultStorage = stub_libs.make("pyrogram", monkeypatch)
    seeded(vault)
    st = engine(VaultStorage, vault)
    new_key = bytes(reversed(KEY))

    async def go():
        await st.open()
        await st.dc_id(4)
        assert vault.sessions["bot"]["fields"]["dc_id"] == 4
        await st.auth_key(new_key)
        assert vault.sessions["bot"]["key"] == new_key
        patches = [r for r in vault.requests if r[0] == "PATCH"]
        assert len(patches) == 2 and all(r[3] == st.core.lease_id for r in patches)
        await st.close()

    run(go())


def test_broken_lease_raises_lease_lost_within_one_renewal_interval(vault, monkeypatch, caplog):
    VaultStorage = stub_libs.make("pyrogram", monkeypatch)
    seeded(vault)
    st = engine(VaultStorage, vault, ttl_seconds=5)  # renews every 5/3 s

    async def go():
        await st.open()
        vault.break_lease("bot")
        wait_until(lambda: st.core.lost is not None, st.core.renew_interval + 2, "the engine to notice")
        with pytest.raises(LeaseLost):
            await st.get_peer_by_id(5)
        with pytest.raises(LeaseLost):
            await st.update_peers([(300, 1, "user", None, None)])
        await st.close()  # never raises

    with caplog.at_level(logging.ERROR, logger="session_vault"):
        run(go())
    assert any("lost" in r.getMessage() for r in caplog.records)
    assert 300 not in vault.sessions["bot"]["peers"]


def test_late_writes_after_a_takeover_are_refused(vault, monkeypatch):
    VaultStorage = stub_libs.make("pyrogram", monkeypatch)
    seeded(vault)
    st = engine(VaultStorage, vault, ttl_seconds=60)
    other = engine(VaultStorage, vault, holder="the new holder")

    async def go():
        await st.open()
        await st.update_peers([(400, 4, "user", None, None)])  # queued, not yet written
        vault.break_lease("bot")
        await other.open()  # someone else holds it now
        with pytest.raises(LeaseLost):
            await st.save()
        with pytest.raises(LeaseLost):
            await st.dc_id(5)
        await st.close()
        await other.close()

    run(go())
    assert 400 not in vault.sessions["bot"]["peers"]
    assert vault.sessions["bot"]["fields"]["dc_id"] == 2


def test_unreachable_writes_stay_queued_and_are_retried(vault, monkeypatch):
    VaultStorage = stub_libs.make("pyrogram", monkeypatch)
    seeded(vault)
    st = engine(VaultStorage, vault, flush_interval=0.2)

    async def go():
        await st.open()
        vault.fail_writes = True
        await st.update_peers([(500, 5, "user", None, None)])
        await st.save()  # logs, keeps the change queued
        assert st.core.pending() >= 1
        vault.fail_writes = False
        wait_until(lambda: 500 in vault.sessions["bot"]["peers"], 5, "the retried flush")
        await st.close()

    run(go())


def test_kurigram_shape(vault, monkeypatch):
    VaultStorage = stub_libs.make("kurigram", monkeypatch)
    seeded(vault)
    st = engine(VaultStorage, vault)
    US = stub_libs.UpdateState

    async def go():
        await st.open()
        # the vault has no address: Kurigram's own table
        assert (await st.server_address(), await st.port()) == ("149.154.167.51", 443)
        await st.update_peers([(600, 6, "user", "15550600")])
        await st.update_usernames([(600, ["alpha", "beta", None])])
        assert await st.get_peer_by_username("beta") == stub_libs.InputPeerUser(600, 6)
        await st.update_usernames([(600, ["gamma"])])
        with pytest.raises(KeyError):
            await st.get_peer_by_username("alpha")
        await st.set_update_state(US(0, None, None, 1700000100, 4))  # merges: pts/qts kept
        await st.set_update_state([US(-1000000000042, 77, None, None, None)])
        states = await st.get_update_states()
        assert states[0] == US(-1000000000042, 77, None, None, None)  # NULL date sorts first
        assert await st.get_update_states(0) == [US(0, 10, 1, 1700000100, 4)]
        await st.delete_update_state([-1000000000042])
        await st.close()

    run(go())
    s = vault.sessions["bot"]
    assert s["peers"][600]["usernames"] == ["gamma"]
    assert s["states"] == {0: {"id": 0, "pts": 10, "qts": 1, "date": 1700000100, "seq": 4}}


def test_kurigram_address_from_the_vault_wins(vault, monkeypatch):
    VaultStorage = stub_libs.make("kurigram", monkeypatch)
    seeded(vault, server_address="10.0.0.1", port=8443)
    st = engine(VaultStorage, vault)

    async def go():
        await st.open()
        assert (await st.server_address(), await st.port()) == ("10.0.0.1", 8443)
        await st.close()

    run(go())


def test_pyrofork_shape(vault, monkeypatch):
    VaultStorage = stub_libs.make("pyrofork", monkeypatch)
    seeded(vault)
    st = engine(VaultStorage, vault)

    async def go():
        await st.open()
        await st.update_peers([(700, 7, "user", "main", None)])
        await st.update_usernames([(700, "second"), (700, "third")])
        assert await st.get_peer_by_username("third") == stub_libs.InputPeerUser(700, 7)
        assert await st.update_state() == [(0, 10, 1, 1700000000, 3)]
        await st.update_state((-1000000000042, 5, None, 1700000200, None))  # replaces, no merge
        await st.update_state(0)  # an int deletes
        await st.remove_state(12345)
        await st.close()

    run(go())
    s = vault.sessions["bot"]
    assert s["peers"][700]["usernames"] == ["main", "second", "third"]
    assert s["states"] == {-1000000000042: {"id": -1000000000042, "pts": 5, "qts": None, "date": 1700000200,
                                            "seq": None}}


def test_not_exclusive_reads_the_export_and_takes_no_lease(vault, monkeypatch):
    VaultStorage = stub_libs.make("pyrogram", monkeypatch)
    seeded(vault)
    st = engine(VaultStorage, vault, exclusive=False)

    async def go():
        await st.open()
        assert await st.auth_key() == KEY
        await st.update_peers([(800, 8, "user", None, None)])
        await st.close()

    run(go())
    assert not any(r[1].endswith("/lease") for r in vault.requests)
    assert 800 in vault.sessions["bot"]["peers"]


def test_unknown_flavours_are_refused_clearly(monkeypatch):
    class Odd:
        pass

    flavour, reason = detect_flavour("pyrogram", Odd, "3.0.0", "SomeFork")
    assert flavour is None and "SomeFork 3.0.0" in reason and "Kurigram" in reason
    assert detect_flavour("pyrogram", stub_libs.PyrogramStorage, "1.4.16", "Pyrogram")[0] is None
    assert detect_flavour("pyrogram", stub_libs.PyroforkStorage, "2.3.69", "Kurigram")[0] is None
    assert detect_flavour("pyrogram", stub_libs.KurigramStorage, "2.2.26", "Kurigram")[0] == "kurigram"
    VaultStorage = stub_libs.make("pyrogram", monkeypatch, version="1.4.16")
    with pytest.raises(UnsupportedLibrary) as info:
        VaultStorage("bot", url="http://127.0.0.1:1", token=TOKEN)
    assert "1.4.16" in str(info.value)


def test_kurigram_accepts_the_engine_as_its_storage(monkeypatch):
    VaultStorage = stub_libs.make("kurigram", monkeypatch)
    st = VaultStorage("bot", url="http://127.0.0.1:1", token=TOKEN)
    assert isinstance(st, stub_libs.KurigramStorage)  # Kurigram ignores anything else


def test_errors_never_carry_secrets(vault, monkeypatch):
    VaultStorage = stub_libs.make("pyrogram", monkeypatch)
    seeded(vault)
    first = engine(VaultStorage, vault, holder="h1")
    second = engine(VaultStorage, vault, holder="h2")
    messages = []

    async def go():
        await first.open()
        try:
            await second.open()
        except SessionVaultError as exc:
            messages.append(str(exc))
        vault.break_lease("bot")
        await first.update_peers([(900, 9, "user", None, None)])
        try:
            await first.save()
        except SessionVaultError as exc:
            messages.append(str(exc))
        await first.close()

    lease_ids = []
    original = vault.lease

    def spy(*a):
        status, body, headers = original(*a)
        if isinstance(body, dict) and "lease_id" in body:
            lease_ids.append(body["lease_id"])
        return status, body, headers

    vault.lease = spy
    run(go())
    bad = engine(VaultStorage, vault, name="missing")
    with pytest.raises(SessionVaultError) as info:
        run(bad.open())
    messages.append(str(info.value))
    with pytest.raises(SessionVaultError) as info:
        run(VaultStorage("bot", url="http://127.0.0.1:9", token=TOKEN).open())
    messages.append(str(info.value))
    assert len(messages) == 4
    secrets = [TOKEN, pyrogram_string(), base64.b64encode(KEY).decode(), KEY.hex()] + lease_ids
    for m in messages:
        for s in secrets:
            assert s not in m
    assert "h1" in messages[0]
    assert TOKEN not in repr(first) and TOKEN not in repr(first.core.http)


def test_a_plain_http_vault_loads_no_ca_bundle_an_https_one_does(monkeypatch):
    import ssl

    from session_vault._http import VaultHTTP

    loaded = []
    real = ssl.SSLContext.load_verify_locations
    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations",
                        lambda self, *a, **k: (loaded.append(a or k), real(self, *a, **k))[1])
    VaultHTTP("http://127.0.0.1:9", TOKEN).close()
    assert loaded == [], "an http:// vault must not pay for loading a CA bundle at every open"
    VaultHTTP("https://127.0.0.1:9", TOKEN).close()
    assert loaded, "an https:// vault verifies the server against a CA bundle"


def test_config_from_the_environment(vault, monkeypatch, tmp_path):
    VaultStorage = stub_libs.make("pyrogram", monkeypatch)
    seeded(vault)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.setenv("SESSION_VAULT_ADDR", vault.url)
    monkeypatch.delenv("SESSION_VAULT_TOKEN", raising=False)
    monkeypatch.setenv("SESSION_VAULT_TOKEN_FILE", str(token_file))
    st = VaultStorage("bot")

    async def go():
        await st.open()
        assert await st.dc_id() == 2
        await st.close()

    run(go())
    monkeypatch.delenv("SESSION_VAULT_TOKEN_FILE")
    with pytest.raises(SessionVaultError, match="no vault token"):
        VaultStorage("bot")


def test_string_codecs():
    from conftest import telethon_string

    got = decode_pyrogram_string(pyrogram_string(dc_id=4, api_id=9, test_mode=True, user_id=5, is_bot=False))
    assert got == {"dc_id": 4, "api_id": 9, "test_mode": True, "auth_key": KEY, "user_id": 5, "is_bot": False}
    got = decode_telethon_string(telethon_string(dc_id=1, ip="149.154.175.53", port=443))
    assert got == {"dc_id": 1, "server_address": "149.154.175.53", "port": 443, "auth_key": KEY}
    with pytest.raises(SessionVaultError):
        decode_pyrogram_string("AAAA")
