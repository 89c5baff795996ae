"""Runs a CPython test module's tests one by one and writes each outcome.

usage: pysuite.py --out FILE [--timeout S] [--skip-file F] [--only-file F]
                  [--include PATTERN]... [--exclude PATTERN]...
                  [--mark-stderr] MODULE...

MODULE is a module of the interpreter's own `test` package (test_socket,
test_selectors). For every test, in the loader's order, FILE gets a line
`start ID` before it runs and `end ID OUTCOME SECONDS` after (OUTCOME: ok,
fail, error, skip, xfail, xpass; SECONDS: how long it ran), flushed at once.
A test that runs longer than `--timeout` seconds ends the process
(faulthandler prints every thread's stack first), so a harness can tell a
hang from a failure, note the test and start again past it with
`--skip-file` (one test id per line).

`--only-file` runs only the ids it lists, `--include` only the ids matching
one of its shell patterns (`test.test_socket.BasicTCPTest.*`; one that
matches no test is an error, exit status 2); `--exclude`
leaves out the ids matching a pattern (`*VSOCK*` where the machine has no
vsock). Failures and errors go to stderr as `FAIL ID` / `ERROR ID` and the
traceback; `--mark-stderr` also writes `pysuite: start ID` there before each
test, so that a harness can tell which test wrote what (warnings, thread
exceptions, faulthandler's dump of a hang).
"""

import argparse
import faulthandler
import fnmatch
import importlib
import sys
import time
import unittest


def flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from flatten(t)
        else:
            yield t


class Recorder(unittest.TestResult):
    def __init__(self, out, timeout, mark_stderr):
        super().__init__()
        self.out = out
        self.timeout = timeout
        self.mark_stderr = mark_stderr
        self.outcome = None
        self.started = 0.0

    def line(self, text):
        self.out.write(text + "\n")
        self.out.flush()

    def startTest(self, test):
        super().startTest(test)
        self.outcome = "ok"
        if self.mark_stderr:
            sys.stderr.write("pysuite: start %s\n" % test.id())
            sys.stderr.flush()
        self.line("start " + test.id())
        self.started = time.monotonic()
        faulthandler.dump_traceback_later(self.timeout, exit=True)

    def stopTest(self, test):
        faulthandler.cancel_dump_traceback_later()
        self.line("end %s %s %.3f" % (test.id(), self.outcome, time.monotonic() - self.started))
        super().stopTest(test)

    def report(self, test, outcome, err):
        # A subtest's failure fails its test; the first bad outcome stays.
        if self.outcome in ("ok", "skip"):
            self.outcome = outcome
        if err is not None:
            sys.stderr.write("%s %s\n%s\n" % (outcome.upper(), test.id(), self._exc_info_to_string(err, test)))

    def addError(self, test, err):
        super().addError(test, err)
        self.report(test, "error", err)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.report(test, "fail", err)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            bad = issubclass(err[0], test.failureException)
            self.report(subtest, "fail" if bad else "error", err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        if self.outcome == "ok":
            self.outcome = "skip"

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.outcome = "xfail"

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.outcome = "xpass"


def ids_in(path):
    if not path:
        return None
    with open(path) as f:
        return {line.strip() for line in f if line.strip()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--skip-file")
    p.add_argument("--only-file")
    p.add_argument("--include", action="append", default=[])
    p.add_argument("--exclude", action="append", default=[])
    p.add_argument("--mark-stderr", action="store_true")
    p.add_argument("modules", nargs="+")
    a = p.parse_args()
    skip = ids_in(a.skip_file) or set()
    only = ids_in(a.only_file)
    loader = unittest.TestLoader()
    tests = []
    for name in a.modules:
        module = importlib.import_module("test." + name)
        tests.extend(flatten(loader.loadTestsFromModule(module)))
    for pat in a.include:
        if not any(fnmatch.fnmatchcase(t.id(), pat) for t in tests):
            # A pattern that names nothing is a typo or a renamed class: say
            # so rather than run a smaller suite than asked for.
            sys.stderr.write("pysuite: --include %r matches no test\n" % pat)
            return 2
    chosen = [
        t
        for t in tests
        if t.id() not in skip
        and (only is None or t.id() in only)
        and (not a.include or any(fnmatch.fnmatchcase(t.id(), pat) for pat in a.include))
        and not any(fnmatch.fnmatchcase(t.id(), pat) for pat in a.exclude)
    ]
    with open(a.out, "a") as out:
        result = Recorder(out, a.timeout, a.mark_stderr)
        unittest.TestSuite(chosen).run(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
