"""The real peers (buildbox-casd, BuildGrid) as subprocesses, for the tests and the
benchmarks alike. Not part of the casvfs package: nothing here is installed."""
