"""A throwaway PostgreSQL cluster in the bench's temporary folder.

initdb and pg_ctl refuse to run as root, so they run as the `postgres`
user (`runuser -u postgres --`) in a folder that user owns. The cluster
listens on 127.0.0.1 and a free port with trust authentication, and keeps
PostgreSQL's durability defaults (fsync and synchronous_commit on), so
figures include a WAL flush per committed token.
"""

import glob
import os
import shutil

from .process import BenchError, free_port, run


def find_bindir():
    """Return the newest /usr/lib/postgresql/N/bin holding initdb, or PG_BINDIR."""
    if os.environ.get("PG_BINDIR"):
        return os.environ["PG_BINDIR"]
    candidates = [path for path in glob.glob("/usr/lib/postgresql/*/bin")
                  if os.path.exists(os.path.join(path, "initdb"))]
    if not candidates:
        raise BenchError("no PostgreSQL server binaries under /usr/lib/postgresql; "
                         "install them with `apt-get install postgresql`")
    return max(candidates, key=lambda path: int(path.split("/")[-2]))


class Cluster:
    """A started cluster; `url(name)` names a database on it."""

    def __init__(self, parent):
        self.bindir = find_bindir()
        self.folder = os.path.join(parent, "postgres")
        self.data = os.path.join(self.folder, "data")
        self.port = free_port()
        os.makedirs(self.folder)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._as_postgres([os.path.join(self.bindir, "initdb"), "-U", "postgres",
                           "-A", "trust", "-E", "UTF8", "--no-sync", "-D", self.data])
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                   "-c max_connections=200")
        self._as_postgres([os.path.join(self.bindir, "pg_ctl"), "-w", "-l",
                           os.path.join(self.folder, "server.log"), "-o", options,
                           "start", "-D", self.data])
        self.running = True

    def _as_postgres(self, args):
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return run(prefix + args)

    def url(self, database="postgres"):
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name):
        """Create an empty database and return its URL."""
        self.psql("postgres", f'CREATE DATABASE "{name}"')
        return self.url(name)

    def psql(self, database, sql):
        """Run SQL with psql and return its unaligned output."""
        return run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                    "-d", self.url(database), "-c", sql], timeout=3600)

    def stop(self):
        if self.running:
            self._as_postgres([os.path.join(self.bindir, "pg_ctl"), "-m", "fast", "-w",
                               "stop", "-D", self.data])
            self.running = False
