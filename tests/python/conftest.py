"""Fixtures for the tests through the Python bindings: the committed bindings loaded with
the freshly built library, a real RTSP camera (gst-rtsp-server) and the real gateway
binary, as tests/tests/streaming.rs starts them. A missing peer fails; nothing is skipped."""
import importlib.util
import json
import os
import pathlib
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug"


@pytest.fixture(scope="session")
def lk():
    """The generated module `latchkey_mobile`, beside the library it loads."""
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="lk-py-"))
    shutil.copy(ROOT / "clients/ffi/bindings/python/latchkey_mobile.py", tmp)
    lib = TARGET / "liblatchkey_mobile.so"
    assert lib.exists(), f"{lib} is missing: run cargo build -p latchkey-mobile first"
    (tmp / lib.name).symlink_to(lib)
    spec = importlib.util.spec_from_file_location("latchkey_mobile", tmp / "latchkey_mobile.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["latchkey_mobile"] = module
    spec.loader.exec_module(module)
    yield module
    shutil.rmtree(tmp, ignore_errors=True)


class Proc:
    """A child process whose stdout lines can be waited for; killed at the end."""

    def __init__(self, args, env=None, log=None):
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log or subprocess.DEVNULL,
                                  env={**os.environ, **(env or {})}, text=True)

    def wait_line(self, prefix, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            ready, _, _ = select.select([self.p.stdout], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                break
            line = self.p.stdout.readline()
            if not line:
                break
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        raise AssertionError(f"{self.p.args[0]} never printed {prefix!r}")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGCONT)
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


class Gateway:
    def __init__(self, state, camera_url):
        self.state = state
        binary = TARGET / "latchkey"
        assert binary.exists(), f"{binary} is missing: run cargo build --workspace --bins first"
        self.log = open(str(state) + ".log", "w")
        self.proc = Proc([str(binary), "--state", str(state), "run", "--listen", "127.0.0.1:0",
                          "--admin-listen", "127.0.0.1:0", "--camera-grace", "2s",
                          f"--camera=front={camera_url}", "--camera=demo=demo:"],
                         env={"LATCHKEY_LOG": "debug"}, log=self.log)
        self.noise = self.proc.wait_line("listening noise ", 20)

    def admin(self, *args):
        out = subprocess.run([str(TARGET / "latchkey"), "--state", str(self.state), *args],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def pair_uri(self, *flags):
        return self.admin("pair", "--uri-only", *flags).strip()

    def devices(self):
        return json.loads(self.admin("devices", "--json"))


@pytest.fixture(scope="session")
def camera():
    proc = Proc(["/usr/bin/python3", str(ROOT / "tests/peers/rtsp_cam.py")], env={"RTSP_PORT": "0"})
    url = proc.wait_line("serving ", 30)
    yield url
    proc.stop()


@pytest.fixture
def gateway(camera, tmp_path):
    gw = Gateway(tmp_path / "gateway", camera)
    yield gw
    gw.proc.stop()
    gw.log.close()


@pytest.fixture
def dict_store(lk):
    class DictStore(lk.SecretStore):
        """A secret store the way an app writes one (here in memory), through the foreign trait."""

        def __init__(self):
            self.secrets = {}

        def get(self, name):
            return self.secrets.get(name)

        def put(self, name, value):
            self.secrets[name] = bytes(value)

        def delete(self, name):
            self.secrets.pop(name, None)

    return DictStore
