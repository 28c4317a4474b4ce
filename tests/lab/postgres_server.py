"""A throwaway PostgreSQL cluster for the tests: Debian's server binaries, started on 127.0.0.1
in a temporary directory (as the ``postgres`` user when the tests run as root), or the server
named by OPTIMLAB_TEST_POSTGRES_URL."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid


class Cluster:
    def __init__(self):
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not binaries:
            raise RuntimeError("no PostgreSQL server binaries (apt-get install postgresql)")
        self.bin = os.path.dirname(binaries[-1])
        self.root = tempfile.mkdtemp(prefix="optimlab-pg-")
        self.data = os.path.join(self.root, "data")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.as_user = os.geteuid() == 0
        if self.as_user:
            shutil.chown(self.root, "postgres")
        self._pg("initdb", "-D", self.data, "--auth=trust", "-U", "postgres", "--no-sync")
        self.start()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg(self, tool: str, *args: str) -> None:
        command = [os.path.join(self.bin, tool), *args]
        if self.as_user:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._pg("pg_ctl", "-D", self.data, "-w", "-l", os.path.join(self.root, "log"), "-o",
                 f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} "
                 f"-c fsync=off -c max_connections=200", "start")

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", self.data, "-w", "-m", "fast", "stop")

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


def fresh_database(server_url: str) -> str:
    """A new empty database on the server; its URL."""
    import psycopg

    name = f"optimlab_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + f"/{name}"
