"""The phone library through its Python bindings against the real gateway and RTSP camera:
what an iOS or Android app does, in the same calls (issue 11, point 4)."""
import asyncio
import os
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest


def new_phone(lk, tmp_path, name, store_cls=None):
    data = tmp_path / name
    if store_cls is None:
        return lk.Latchkey.with_file_store(str(data))
    return lk.Latchkey(str(data), store_cls())


def raw_get(url, host=None, read_all=False):
    """GET with a chosen Host header over a plain socket; returns the bytes answered."""
    u = urllib.parse.urlsplit(url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(f"GET {u.path} HTTP/1.1\r\nHost: {host or u.netloc}\r\nConnection: close\r\n\r\n".encode())
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
            if not read_all and b"\r\n\r\n" in out:
                return out


def test_pair_compare_code_confirm_cameras_and_snapshot(lk, gateway, tmp_path, dict_store):
    phone = new_phone(lk, tmp_path, "phone", dict_store)

    async def main():
        paired = await phone.pair(gateway.pair_uri("--role", "owner"), "py-phone")
        assert paired.pending
        row = [d for d in gateway.devices() if d["id"] == paired.device_id]
        assert len(row) == 1 and row[0]["code"] == paired.code, (row, paired.code)
        assert len(paired.code) == 6 and paired.code.isdigit()
        # Before the owner confirms, the gateway refuses, and the library says why.
        with pytest.raises(lk.LatchkeyError.Refused) as refused:
            await phone.connect(paired.home_id, None)
        assert refused.value.reason == lk.RefusalReason.PENDING
        gateway.admin("confirm", paired.device_id)
        seen = []

        class Listener(lk.ConnectionListener):
            def on_status(self, status):
                seen.append(status)

        session = await phone.connect(paired.home_id, Listener())
        assert isinstance(seen[0], lk.ConnectionStatus.CONNECTING), seen
        assert isinstance(seen[-1], lk.ConnectionStatus.CONNECTED), seen
        assert seen[-1].address == session.address() == gateway.noise
        homes = phone.homes()
        assert [h.id for h in homes] == [paired.home_id] and not homes[0].pending
        cams = {c.id: c for c in await session.cameras()}
        assert set(cams) == {"front", "demo"} and cams["front"].kind == "rtsp"
        jpeg = await session.snapshot("demo")
        assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
        with pytest.raises(lk.LatchkeyError.Gateway) as nosnap:
            await session.snapshot("front")
        assert nosnap.value.code == "no_snapshot"

    asyncio.run(main())


def test_player_url_plays_fmp4_and_hls_and_refuses_strangers(lk, gateway, tmp_path):
    phone = new_phone(lk, tmp_path, "phone")

    async def main():
        paired = await phone.pair(gateway.pair_uri("--auto-confirm"), "viewer")
        session = await phone.connect(paired.home_id, None)
        return await session.player_url(), session

    base, session = asyncio.run(main())
    assert base.startswith("http://127.0.0.1:")
    probe = subprocess.run(["timeout", "40", "ffprobe", "-v", "error", "-show_entries",
                            "stream=codec_name", "-of", "csv=p=0", f"{base}/cameras/front/live.mp4"],
                           capture_output=True, text=True)
    assert probe.stdout.strip() == "h264", probe.stderr
    playlist = raw_get(f"{base}/cameras/front/live.m3u8", read_all=True)
    assert b"#EXT-X-MAP:URI=\"hls/init.mp4\"" in playlist, playlist
    durations = [float(l.split(b":")[1].rstrip(b",")) for l in playlist.split(b"\n") if l.startswith(b"#EXTINF")]
    assert durations and all(0 < d <= 2.0 for d in durations), durations
    hls = subprocess.run(["timeout", "60", "ffmpeg", "-v", "error", "-i", f"{base}/cameras/front/live.m3u8",
                          "-t", "3", "-f", "null", "-"], capture_output=True, text=True)
    assert hls.returncode == 0, hls.stderr
    # A wrong token, no token, or a foreign Host (DNS rebinding) get nothing at all.
    port = base.split(":")[2].split("/")[0]
    good = raw_get(f"{base}/cameras.json", read_all=True)
    assert good.startswith(b"HTTP/1.1 200") and b"access-control" not in good.lower()
    assert raw_get(f"http://127.0.0.1:{port}/wrongtoken/cameras.json") == b""
    assert raw_get(f"http://127.0.0.1:{port}/cameras.json") == b""
    assert raw_get(f"{base}/cameras.json", host=f"evil.example:{port}") == b""
    assert raw_get(f"{base}/cameras.json", host=f"localhost:{port}").startswith(b"HTTP/1.1 200")
    # The player page is served under the token and finds everything relative to it.
    page = raw_get(f"{base}/", read_all=True)
    assert page.startswith(b"HTTP/1.1 200") and b'fetch("cameras.json")' in page
    assert raw_get(base).startswith(b"HTTP/1.1 308")
    session.close()


def test_owner_invites_a_guest_who_sees_only_its_cameras_and_revocation_cuts(lk, gateway, tmp_path):
    owner = new_phone(lk, tmp_path, "owner")
    guest = new_phone(lk, tmp_path, "guest")

    async def setup():
        o = await owner.pair(gateway.pair_uri("--role", "owner", "--auto-confirm"), "owner")
        os_ = await owner.connect(o.home_id, None)
        inv = await os_.invite(lk.InviteRequest(viewer=False, cameras="front", expires_secs=None,
                                                name="visitor", auto_confirm=True))
        assert inv.uri.startswith("latchkey://pair?")
        g = await guest.pair(inv.uri, "guest-phone")
        gs = await guest.connect(g.home_id, None)
        assert [c.id for c in await gs.cameras()] == ["front"]
        with pytest.raises(lk.LatchkeyError.Gateway) as owner_only:
            await gs.devices()
        assert owner_only.value.code == "owner_only"
        names = {d.name: d for d in await os_.devices()}
        assert names["visitor"].role == "guest" and names["visitor"].cameras == "front"
        return o, os_, g, gs, await gs.player_url(), names["visitor"].id

    o, os_, g, gs, base, guest_id = asyncio.run(setup())
    # The guest plays the camera through its player; the owner revokes it mid-stream.
    u = urllib.parse.urlsplit(f"{base}/cameras/front/live.mp4")
    sock = socket.create_connection((u.hostname, u.port), timeout=30)
    sock.sendall(f"GET {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\n\r\n".encode())
    ended = {}
    received = []

    def read():
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                ended["at"] = time.monotonic()
                return
            received.append(len(chunk))

    reader = threading.Thread(target=read)
    reader.start()
    deadline = time.monotonic() + 20
    while sum(received) < 50_000 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sum(received) >= 50_000, "the stream did not play"

    async def revoke():
        closed = await os_.revoke(guest_id)
        return time.monotonic(), closed

    revoked_at, closed = asyncio.run(revoke())
    reader.join(10)
    sock.close()
    assert "at" in ended, "the stream did not end"
    assert ended["at"] - revoked_at < 1.0, ended["at"] - revoked_at
    assert closed >= 1

    async def after():
        assert gs.is_closed()
        with pytest.raises(lk.LatchkeyError.Refused):
            await guest.connect(g.home_id, None)
        # The owner is unaffected.
        assert {c.id for c in await os_.cameras()} == {"front", "demo"}
        kinds = [e.kind for e in await os_.audit(50)]
        assert "device-revoked" in kinds and "camera-watched" in kinds

    asyncio.run(after())


def fds():
    return len(os.listdir("/proc/self/fd"))


def test_a_cancelled_connect_leaves_no_open_descriptor(lk, gateway, tmp_path):
    phone = new_phone(lk, tmp_path, "phone")

    async def pair():
        return (await phone.pair(gateway.pair_uri("--auto-confirm"), "p")).home_id

    home = asyncio.run(pair())
    # A stopped gateway accepts TCP (the kernel does) but never answers the handshake:
    # connect hangs until the app gives up.
    gateway.proc.p.send_signal(__import__("signal").SIGSTOP)
    try:
        before = fds()

        async def cancelled():
            task = asyncio.ensure_future(phone.connect(home, None))
            await asyncio.sleep(0.5)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(cancelled())
        deadline = time.monotonic() + 5
        while fds() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fds() <= before, (before, fds(), os.listdir("/proc/self/fd"))
        out = subprocess.run(["ss", "-tnp"], capture_output=True, text=True).stdout
        mine = [l for l in out.splitlines() if f"pid={os.getpid()}," in l and gateway.noise in l]
        assert not mine, mine
    finally:
        gateway.proc.p.send_signal(__import__("signal").SIGCONT)
