"""Run a build step in a copy-on-write mount and get its output tree back
(documentation example, run by the test suite). Needs FUSE and root or fuse3's
user mounts."""

import os
import subprocess
import tempfile

from casvfs import CasDirectory, LocalStore
from casvfs.fuse import mount

work = tempfile.mkdtemp()
store = LocalStore(os.environ.get("CASVFS_STORE", os.path.join(work, "store")))

# The input tree: one source file, written straight into the store.
sources = CasDirectory(store)
with sources.open_directory("src", create=True).open_file("greeting.txt", mode="w") as source:
    source.write("hello from the sandbox\n")

# Mount it writable and let a program work in it; nothing is copied up front.
mountpoint = os.path.join(work, "sandbox")
os.mkdir(mountpoint)
with mount(store, sources.get_digest(), mountpoint, writable=True) as sandbox:
    subprocess.run(
        ["sh", "-c", "mkdir out && tr a-z A-Z < src/greeting.txt > out/GREETING && rm -r src"],
        cwd=mountpoint,
        check=True,
    )

# Unmounting captured what the program left: only the written file was hashed.
result = sandbox.directory()
print("result:", result.get_digest())
print(list(result.list_relative_paths()))
with result.open_file("out/GREETING") as output:
    print(output.read(), end="")
