"""The long fuzzing mode, run by hand from the repository root::

    python -m tests.fuzz --minutes 30 --out fuzz-findings/

Runs mutated captures (most of the time) and generated conversations
under the contract of :mod:`.contract`, each in a forked child with a time
and a memory limit, until the time is up; prints the case count, the rate
and every distinct finding at the end, and writes each failing input to
``--out`` with a ``.txt`` saying the mutation, the seed and what failed (a
few per distinct finding). A share of the time (``--decoders``) goes to the
application decoders' fuzz tests (:mod:`.test_app_decoders`, which the test
suite runs for a few seconds with one seed), in rounds with seeds taken from
the master seed; a failure is written to ``--out`` as a ``.txt`` saying how
to run that test again. Exit status 1 if anything was found.

    python -m tests.fuzz --replay SEED      # rebuild one mutation case, run it, say what it did
    python -m tests.fuzz --sanitize --minutes 10   # the same over kernels built with ASan, UBSan

``--sanitize`` runs the same command in a copy of the repository whose
compiled kernels are built with gcc's sanitizers (:mod:`golden.sanitized`),
and prints whatever they report (a memory error in a kernel would otherwise
pass unseen, or kill a case as a crash with no cause).
"""

from __future__ import annotations

import argparse
import collections
import random
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from .contract import RSS_LIMIT, TIME_LIMIT, Outcome, run_case
from .conversations import Generated, conversations
from .mutations import MUTATIONS, Case, case_seed, load_corpus, make_case

KEEP_PER_FINDING = 3  #: inputs written per distinct finding


class _TimeUp(Exception):
    """Ends the conversations' hypothesis run."""


class Session:
    """Counts cases and writes the failing ones."""

    def __init__(self, out: Path, work: Path, analyze_every: int, time_limit: float,
                 rss_limit: int) -> None:
        self.out, self.work = out, work
        self.analyze_every = analyze_every
        self.time_limit, self.rss_limit = time_limit, rss_limit
        self.cases = 0
        self.statuses: collections.Counter[str] = collections.Counter()
        self.findings: collections.Counter[tuple[str, str]] = collections.Counter()
        self.examples: dict[tuple[str, str], list[str]] = {}
        self.slowest = 0.0
        self.most_rss = 0
        self.harness_errors = 0

    def run(self, path: Path) -> Outcome:
        analyze = self.work / "tables" if self.cases % self.analyze_every == 0 else None
        outcome = run_case(path, analyze, time_limit=self.time_limit, rss_limit=self.rss_limit)
        self.cases += 1
        self.statuses[outcome.status] += 1
        self.slowest = max(self.slowest, outcome.seconds)
        self.most_rss = max(self.most_rss, outcome.rss_added)
        return outcome

    def record(self, outcome: Outcome, data: bytes, suffix: str, what: str, how: list[str],
               replay: str) -> None:
        sig = outcome.signature()
        self.findings[sig] += 1
        if self.findings[sig] > KEEP_PER_FINDING:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        n = sum(self.findings.values())
        name = f"{n:04d}-{outcome.status}-{what.split('+')[0]}"
        (self.out / (name + suffix)).write_bytes(data)
        text = [f"input:    {name + suffix}", f"case:     {what}", *[f"  {h}" for h in how],
                f"replay:   {replay}", f"status:   {outcome.status}",
                f"error:    {outcome.error}", f"where:    {outcome.where}",
                f"seconds:  {outcome.seconds:.2f}",
                f"rss:      +{outcome.rss_added / 2**20:.0f} MiB", "", outcome.detail]
        (self.out / (name + ".txt")).write_text("\n".join(text) + "\n", encoding="utf-8")
        self.examples.setdefault(sig, []).append(name + suffix)
        print(f"finding: {outcome.status} {outcome.error or outcome.detail[:80]} "
              f"[{outcome.where}] -> {self.out / (name + suffix)}", flush=True)

    def mutation_case(self, case: Case) -> Outcome:
        path = self.work / f"case{case.suffix}"
        path.write_bytes(case.data)
        outcome = self.run(path)
        if outcome.failed:
            self.record(outcome, case.data, case.suffix, case.mutation,
                        [f"sources: {', '.join(case.sources)}", *case.notes],
                        f"python -m tests.fuzz --replay {case.seed}")
        return outcome


def _mutations(session: Session, master: int, until: float, only: str | None) -> None:
    corpus = load_corpus()
    i = 0
    while time.monotonic() < until:
        seed = case_seed(master, i)
        i += 1
        try:
            case = make_case(seed, corpus, only)
        except Exception:  # noqa: BLE001 - a bug of the harness, not of wspcap: say so, go on
            session.harness_errors += 1
            if session.harness_errors <= 3:
                print(f"harness error building case {seed}:\n{traceback.format_exc()}",
                      file=sys.stderr)
            continue
        session.mutation_case(case)


def _conversations(session: Session, master: int, until: float) -> None:
    @hypothesis_seed(master)
    @settings(max_examples=10**9, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(conversations())
    def one(gen: Generated) -> None:
        if time.monotonic() >= until:
            raise _TimeUp
        path = gen.write(session.work / "conversation.pcap")
        outcome = session.run(path)
        if outcome.failed:
            session.record(outcome, path.read_bytes(), ".pcap", "conversation", gen.notes,
                           f"hypothesis seed {master} (the .pcap is the reproducer)")

    try:
        one()
    except _TimeUp:
        pass


def _decoders(master: int, until: float, out: Path) -> tuple[int, list[str]]:
    """The application decoders' fuzz tests, every decoder of each, in rounds
    (each a seed from ``master`` and a minute at most, shared out) until
    ``until``: the calls made, and what failed (also written to ``out``)."""
    from . import test_app_decoders as app

    calls = [(test, name) for test, names in (
        (app.test_mutated_payloads_never_escape, sorted(app.DECODERS)),
        (app.test_mutated_runs_are_receive, app.RUNS),
        (app.test_mutated_runs_by_columns_are_receive, app.COLUMNS)) for name in names]
    made, failed = 0, []
    rounds = 0
    while time.monotonic() < until:
        seed = case_seed(master, rounds)
        rounds += 1
        share = min(60.0, until - time.monotonic()) / len(calls)
        for test, name in calls:
            try:
                test(name, seed=seed, budget=share, cases=10**9)
            except AssertionError as exc:
                what = f"{test.__name__}[{name}]: {str(exc).splitlines()[0]}"
                failed.append(what)
                out.mkdir(parents=True, exist_ok=True)
                (out / f"decoders-{len(failed):04d}.txt").write_text(
                    f"{what}\nreplay: from tests.fuzz.test_app_decoders import {test.__name__}; "
                    f"{test.__name__}({name!r}, seed={seed}, budget=1e9, cases=CASE + 1)\n\n"
                    f"{traceback.format_exc()}", encoding="utf-8")
                print(f"finding: {what}", flush=True)
            made += 1
    return made, failed


def _sanitized(argv: list[str], out: Path) -> int:
    """This run again (``argv``, less ``--sanitize``) in a copy of the
    repository whose kernels are built with the sanitizers
    (:mod:`golden.sanitized`); their reports are printed and kept in ``out``."""
    from golden.sanitized import build_copy, environment, reports_in, runtimes
    preload = runtimes()
    if preload is None:
        print("--sanitize needs gcc with libasan and libubsan", file=sys.stderr)
        return 2
    out = out.resolve()
    with tempfile.TemporaryDirectory(prefix="wspcap-sanitized-") as tmp:
        copy, reports = Path(tmp) / "copy", Path(tmp) / "reports"
        copy.mkdir()
        reports.mkdir()
        print("building the kernels with ASan and UBSan in a copy...", flush=True)
        build_copy(copy)
        # (the copy's findings go where this run's would: --out made absolute)
        rest: list[str] = []
        for a, before in zip(argv, [None, *argv]):
            if a != "--out" and before != "--out" and not a.startswith("--out="):
                rest.append(a)
        status = subprocess.run([sys.executable, "-m", "tests.fuzz", *rest, "--out", str(out)],
                                cwd=copy, env=environment(copy, reports, preload),
                                check=False).returncode
        found = reports_in(reports)
        if found:
            out.mkdir(parents=True, exist_ok=True)
            (out / "sanitizers.txt").write_text(found, encoding="utf-8")
            print(f"\nthe sanitizers reported (kept in {out / 'sanitizers.txt'}):\n{found}")
            return 1
        print("the sanitizers reported nothing")
        return status


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz",
                                 description="Fuzz wspcap's readers under their contract.")
    ap.add_argument("--minutes", type=float, default=5.0, help="how long (default 5)")
    ap.add_argument("--out", type=Path, default=Path("fuzz-findings"),
                    help="where failing inputs go (default fuzz-findings/)")
    ap.add_argument("--seed", type=int, default=None, help="master seed (default: random)")
    ap.add_argument("--mutation", choices=sorted(MUTATIONS), help="only this mutation first")
    ap.add_argument("--conversations", type=float, default=0.2,
                    help="share of the time for generated conversations (default 0.2)")
    ap.add_argument("--decoders", type=float, default=0.1,
                    help="share of the time for the application decoders (default 0.1)")
    ap.add_argument("--analyze-every", type=int, default=10,
                    help="also run analyze_to on every Nth case (default 10)")
    ap.add_argument("--time-limit", type=float, default=TIME_LIMIT,
                    help=f"seconds per case (default {TIME_LIMIT:g})")
    ap.add_argument("--rss-limit-mb", type=int, default=RSS_LIMIT >> 20,
                    help=f"MiB of resident memory a case may add (default {RSS_LIMIT >> 20})")
    ap.add_argument("--replay", type=int, metavar="SEED", help="run one mutation case and stop")
    ap.add_argument("--sanitize", action="store_true",
                    help="run in a copy whose compiled kernels are built with gcc's ASan and "
                         "UBSan, and print what they report (exit 1 if anything)")
    args = ap.parse_args(argv)
    if args.sanitize:
        return _sanitized([a for a in (sys.argv[1:] if argv is None else argv)
                           if a != "--sanitize"], args.out)
    master = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)

    with tempfile.TemporaryDirectory(prefix="wspcap-fuzz-") as tmp:
        session = Session(args.out, Path(tmp), args.analyze_every, args.time_limit,
                          args.rss_limit_mb << 20)
        if args.replay is not None:
            case = make_case(args.replay, load_corpus(), args.mutation)
            outcome = session.mutation_case(case)
            print(f"case {case.seed}: {case.mutation} of {', '.join(case.sources)}")
            for note in case.notes:
                print(f"  {note}")
            print(f"-> {outcome.status} {outcome.error} {outcome.where}\n{outcome.detail}")
            return 1 if outcome.failed else 0
        print(f"fuzzing for {args.minutes:g} min, seed {master}, "
              f"findings into {args.out}/", flush=True)
        start = time.monotonic()
        end = start + args.minutes * 60
        split = start + (end - start) * (1 - args.conversations - args.decoders)
        generated = start + (end - start) * (1 - args.decoders)
        _mutations(session, master, split, args.mutation)
        mutation_cases = session.cases
        _conversations(session, master, generated)
        calls, failed = _decoders(master, end, args.out)
        took = time.monotonic() - start

    print(f"\n{session.cases} cases in {took / 60:.1f} min ({session.cases / took:.1f} per s): "
          f"{mutation_cases} mutated captures, {session.cases - mutation_cases} conversations; "
          f"seed {master}")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in session.statuses.most_common()))
    if session.harness_errors:
        print(f"{session.harness_errors} cases could not be built (harness errors)")
    print(f"slowest case {session.slowest:.2f} s; most memory added "
          f"{session.most_rss / 2**20:.0f} MiB")
    print(f"application decoders: {calls} test calls (a decoder each), "
          f"{len(failed)} failed" + "".join(f"\n  {f}" for f in failed))
    if not session.findings:
        print("no finding" if not failed else "no finding in the captures")
        return 1 if failed else 0
    print(f"{len(session.findings)} distinct findings:")
    for (kind, where), count in session.findings.most_common():
        print(f"  {count:5d} x {kind} at {where or '-'}: "
              f"{', '.join(session.examples.get((kind, where), []))}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
