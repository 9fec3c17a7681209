"""The quick start of the documentation, run by the test suite so it cannot rot."""

import os
import tempfile

from casvfs import CasDirectory, LocalStore

work = tempfile.mkdtemp()
source = os.path.join(work, "source")
os.makedirs(os.path.join(source, "bin"))
with open(os.path.join(source, "bin", "hello"), "w") as script:
    script.write("#!/bin/sh\necho hello\n")
os.chmod(os.path.join(source, "bin", "hello"), 0o755)

store = LocalStore(os.environ.get("CASVFS_STORE", os.path.join(work, "store")))

# Import a host directory: files are hashed in parallel and stored once.
tool = CasDirectory(store)
tool.import_files(source)
print("tool:", tool.get_digest())

# Compose a bigger tree by reference: no file is copied or re-hashed.
sysroot = CasDirectory(store)
sysroot.open_directory("opt/tool", create=True).import_files(tool, collect_result=False)
print("sysroot:", sysroot.get_digest())
print(list(sysroot.list_relative_paths()))

# Write it out; hard links from the store where possible.
sysroot.export_files(os.path.join(work, "staged"), can_link=True)
with open(os.path.join(work, "staged", "opt", "tool", "bin", "hello")) as staged:
    print(staged.read(), end="")
