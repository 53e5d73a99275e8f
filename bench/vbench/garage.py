"""A throwaway 3-node Garage S3 cluster on 127.0.0.1 for the S3 phases.

Mirrors crates/testkit's garage cluster: per node a garage.toml (sqlite, replication_factor 3,
rpc/S3/admin on free loopback ports, one shared rpc_secret), ``garage -c FILE server``; node 0
connects the others, assigns all three to zone dc1 with 1G each, applies layout version 1,
creates bucket ``bench`` and key ``bench`` with read/write/owner.  Clients use node 0's S3 port.

Request counting: every node's admin API serves Prometheus text at /metrics (no token);
``requests()`` sums ``api_s3_request_counter{api_endpoint=...}`` over the nodes.
"""

import os
import re
import secrets
import shutil
import socket
import subprocess
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
LOCAL_BUILD = os.path.normpath(os.path.join(HERE, "..", "..", ".cache", "garage", "bin", "garage"))
INSTALL_HINT = "cargo install garage --locked --version 2.5.0 --root .cache/garage"
BUCKET = "bench"
REGION = "garage"
_COUNTER = re.compile(r'^api_s3_request_counter\{([^}]*)\}\s+([0-9.eE+]+)')
_ENDPOINT = re.compile(r'api_endpoint="([^"]*)"')


def garage_binary() -> str | None:
    """$VTOOL_GARAGE, else <repo>/.cache/garage/bin/garage, else garage on PATH."""
    env = os.environ.get("VTOOL_GARAGE")
    if env:
        return env if os.access(env, os.X_OK) else None
    if os.access(LOCAL_BUILD, os.X_OK):
        return LOCAL_BUILD
    return shutil.which("garage")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GarageCluster:
    """Call ``missing()`` first; ``start()`` raises RuntimeError (with the CLI's output) on failure."""

    def __init__(self, workdir: str, nodes: int = 3):
        self.dir = os.path.abspath(workdir)
        self.binary = garage_binary()
        self.n = nodes
        self.nodes = []   # dicts: config, rpc, s3, admin, proc, log
        self.key_id = self.secret = None

    def missing(self) -> str | None:
        if not self.binary:
            where = os.environ.get("VTOOL_GARAGE") or f"{LOCAL_BUILD} or garage on PATH"
            return f"garage not found ({where}); install with `{INSTALL_HINT}`"
        return None

    def version(self) -> str:
        try:
            p = subprocess.run([self.binary, "--version"], capture_output=True, text=True, timeout=30)
            return (p.stdout or p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "unknown"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.nodes[0]['s3']}"

    def _cli(self, *args, retry_s: float = 60.0) -> str:
        """garage -c <node 0> ARGS; retried while RPC comes up."""
        deadline = time.monotonic() + retry_s
        while True:
            p = subprocess.run([self.binary, "-c", self.nodes[0]["config"], *args],
                               capture_output=True, text=True, timeout=60, env=self._env())
            if p.returncode == 0:
                return p.stdout
            if time.monotonic() > deadline:
                raise RuntimeError(f"garage {' '.join(args)} failed: {(p.stderr or p.stdout).strip()[-300:]}")
            time.sleep(0.5)

    def _env(self) -> dict:
        e = dict(os.environ)
        e["RUST_LOG"] = "warn"
        return e

    def start(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        rpc_secret = secrets.token_hex(32)
        for i in range(self.n):
            d = os.path.join(self.dir, f"node{i}")
            os.makedirs(d)
            node = {"rpc": _free_port(), "s3": _free_port(), "admin": _free_port(),
                    "config": os.path.join(d, "garage.toml"), "log": os.path.join(d, "garage.log")}
            with open(node["config"], "w") as f:
                f.write(f'metadata_dir = "{d}/meta"\n'
                        f'data_dir = "{d}/data"\n'
                        'db_engine = "sqlite"\n'
                        'replication_factor = 3\n'
                        f'rpc_bind_addr = "127.0.0.1:{node["rpc"]}"\n'
                        f'rpc_public_addr = "127.0.0.1:{node["rpc"]}"\n'
                        f'rpc_secret = "{rpc_secret}"\n\n'
                        f'[s3_api]\ns3_region = "{REGION}"\napi_bind_addr = "127.0.0.1:{node["s3"]}"\n\n'
                        f'[admin]\napi_bind_addr = "127.0.0.1:{node["admin"]}"\n')
            log = open(node["log"], "ab")
            try:
                node["proc"] = subprocess.Popen([self.binary, "-c", node["config"], "server"],
                                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                                env=self._env())
            finally:
                log.close()
            self.nodes.append(node)
        try:
            ids = []
            for node in self.nodes:
                p = self._node_id(node)
                ids.append(p.split("@")[0])
            for i in range(1, self.n):
                self._cli("node", "connect", f"{ids[i]}@127.0.0.1:{self.nodes[i]['rpc']}")
            for hexid in ids:
                self._cli("layout", "assign", "-z", "dc1", "-c", "1G", hexid)
            self._cli("layout", "apply", "--version", "1")
            self._cli("bucket", "create", BUCKET)
            out = self._cli("key", "create", BUCKET)
            self.key_id = re.search(r"Key ID:\s*(\S+)", out).group(1)
            self.secret = re.search(r"Secret key:\s*(\S+)", out).group(1)
            self._cli("bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", self.key_id)
        except (RuntimeError, AttributeError, OSError, subprocess.TimeoutExpired) as e:
            self.stop()
            raise RuntimeError(f"garage cluster setup failed: {e}") from e

    def _node_id(self, node) -> str:
        deadline = time.monotonic() + 60
        while True:
            if node["proc"].poll() is not None:
                raise RuntimeError(f"garage node exited with {node['proc'].returncode} (log {node['log']})")
            p = subprocess.run([self.binary, "-c", node["config"], "node", "id", "-q"],
                               capture_output=True, text=True, timeout=60, env=self._env())
            if p.returncode == 0 and "@" in p.stdout:
                return p.stdout.strip().splitlines()[-1]
            if time.monotonic() > deadline:
                raise RuntimeError(f"garage node id failed: {(p.stderr or p.stdout).strip()[-300:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        for node in self.nodes:
            proc = node.get("proc")
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            node["proc"] = None

    # -- client side ----------------------------------------------------------------
    bucket = BUCKET

    def url(self, prefix: str) -> str:
        """vtool's s3:// URL for a prefix of the bucket."""
        return f"s3://{BUCKET}/{prefix}"

    def aws_env(self) -> dict:
        return {"AWS_ACCESS_KEY_ID": self.key_id, "AWS_SECRET_ACCESS_KEY": self.secret,
                "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}

    def vtool_env(self) -> dict:
        e = self.aws_env()
        e.update(VTOOL_S3_ENDPOINT=self.endpoint, VTOOL_S3_PATH_STYLE="1")
        return e

    def requests(self) -> dict:
        """api_s3_request_counter per api_endpoint, summed over the nodes."""
        total = {}
        for node in self.nodes:
            with urllib.request.urlopen(f"http://127.0.0.1:{node['admin']}/metrics", timeout=10) as r:
                text = r.read().decode(errors="replace")
            for line in text.splitlines():
                m = _COUNTER.match(line)
                if m:
                    ep = _ENDPOINT.search(m.group(1))
                    name = ep.group(1) if ep else "?"
                    total[name] = total.get(name, 0) + int(float(m.group(2)))
        return total

    def stored_bytes(self, prefix: str) -> int | None:
        """Sum of object sizes under ``prefix`` in the bucket (aws s3 ls --recursive --summarize)."""
        env = dict(os.environ)
        env.update(self.aws_env())
        p = subprocess.run(["aws", "s3", "ls", f"s3://{BUCKET}/{prefix.strip('/')}/", "--recursive", "--summarize",
                            "--endpoint-url", self.endpoint], capture_output=True, text=True, env=env, timeout=300)
        m = re.search(r"Total Size:\s*(\d+)", p.stdout)
        return int(m.group(1)) if m else None  # rc 1 for an empty prefix, still summarized
