"""What every command line shares beyond run_all.py's own parser: the parser of another command
(the benchmarks) with run_all.py's option definitions (common/options.py) added to it, the one
parser of a backend list, and the one builder of a run_all.py command line."""
from __future__ import annotations

import argparse
import re
import sys
from typing import Sequence

from common import options
from common.options import UsageError


def entry_parser(prog: str, doc: str, epilog: str | None = None,
                 formatter=argparse.RawDescriptionHelpFormatter) -> argparse.ArgumentParser:
    """The parser of a command other than run_all.py (the benchmarks): its description the
    first paragraph of its docstring, bad usage one line naming the fix (exit 2) as run_all.py's."""
    return options.OneLineParser(prog=prog, description=doc.split("\n\n")[0], epilog=epilog,
                                 formatter_class=formatter)


_HELP_DEFAULT = re.compile(r"\s*\(default[^()]*\)$")  # an option's help ends with its default


def add_run_options(parser: argparse.ArgumentParser, *names: str, backend_names: Sequence[str] = (),
                    **defaults: tuple) -> None:
    """Adds RunOptions fields `names` to another command's parser, with run_all.py's help,
    choices and metavar. defaults: name=(value, text) where that command's default differs
    from run_all.py's: its value, and the text its help gives in place of run_all.py's default.
    backend_names: the registry's, named in --backend's help (the command hands them in)."""
    fields = options.options()
    for name in names:
        kwargs = options.argparse_kwargs(name, fields[name], False, backend_names)
        if name in defaults:
            kwargs["default"], text = defaults[name]
            kwargs["help"], found = _HELP_DEFAULT.subn(f" (default {text})", kwargs["help"])
            assert found == 1, f"{name}'s help ends without its default"
        parser.add_argument(options.flag(name), **kwargs)


def bounds_problem(args, names: Sequence[str] | None = None) -> str | None:
    """One line if an option of `names` (default: every RunOptions field that args has) is out
    of its bounds (its `check`), else None."""
    for name, opt in options.options().items():
        value = getattr(args, name, None)
        if (names is not None and name not in names) or value is None:
            continue
        if opt.check == "non_negative" and value < 0:
            return f"{options.flag(name)} must be 0 (off) or positive, got {value}"
        if opt.check == "positive" and value <= 0:
            return f"{options.flag(name)} must be positive, got {value}"
    return None


def split_label(label: str) -> tuple[str, str | None]:
    """A result's label ('jax', 'jax@newest', 'jax@/opt/py/bin/python') as (backend, ENV or None)."""
    name, at, env = label.partition("@")
    return name, (env if at else None)


def parse_backends(text: str, names: Sequence[str], environments: bool = False) -> list[str]:
    """The backends a --backend value names, in its order: 'all' alone for every one of `names`
    (the registry's), else a comma-separated list of them, spaces around a name ignored.
    environments: a name may carry @ENV (an environment tools.envs built, or the absolute path
    of a Python interpreter) and one backend may then appear several times, each label once
    ('jax,jax@newest'); the labels are returned as given; 'all@ENV' alone is returned as is. UsageError (one line naming the fix)
    for a list naming none, 'all' beside other names, any unknown name (each one named), an
    empty ENV, @ENV where the command takes none, or a label given twice."""
    given = [b.strip() for b in text.split(",") if b.strip()]
    valid = f"valid: all, or a list of {', '.join(names)}"
    if given == ["all"]:
        return list(names)
    if environments and len(given) == 1 and split_label(given[0])[0] == "all" and given[0][4:].strip():
        return given  # all@ENV: the harness expands it (environment.expand_all), knowing ENV
    if not given:
        raise UsageError(f"--backend {text!r} names no backend; {valid}")
    if "all" in given:
        raise UsageError(f"--backend {text}: 'all' stands alone; pass --backend all or a list "
                         f"like {','.join(names[:2])}")
    unknown = [b for b in given if split_label(b)[0] not in names]
    if unknown:
        raise UsageError(f"--backend {text}: unknown backend {', '.join(unknown)}; {valid}")
    with_env = [b for b in given if split_label(b)[1] is not None]
    if with_env and not environments:
        raise UsageError(f"--backend {text}: this command runs backends in its own environment; "
                         f"drop @ENV from {', '.join(with_env)} or use run_all.py "
                         "(or benchmarks.throughput, benchmarks.scaling)")
    empty = [b for b in with_env if not split_label(b)[1].strip()]
    if empty:
        raise UsageError(f"--backend {text}: {', '.join(empty)} names no environment; write NAME@ENV, "
                         "ENV an environment's name (python -m tools.envs list) or a Python's absolute path")
    twice = sorted({b for b in given if given.count(b) > 1})
    if twice:
        raise UsageError(f"--backend {text}: {', '.join(twice)} named twice; name each backend once"
                         + (" per environment" if environments else ""))
    return given


def run_all_command(**values) -> list[str]:
    """run_all.py's command line ([python, 'run_all.py', flags...], run in the repository) with
    these RunOptions fields set: a value None is left out; a bool gives its flag where it
    differs from the default (--quiet, --no-figures); a list or tuple is joined with commas
    (--backend pytorch,jax), or is the option's values (--compare A B)."""
    fields = options.options()
    argv = [sys.executable, "run_all.py"]
    for name, value in values.items():
        if name not in fields:
            raise TypeError(f"run_all.py has no option {options.flag(name)}")
        if value is None:
            continue
        if isinstance(value, bool):
            if value != getattr(options.DEFAULTS, name):
                argv.append(options.flag(name) if value else "--no-" + options.flag(name)[2:])
        elif fields[name].nargs:
            argv += [options.flag(name), *map(str, value)]
        elif isinstance(value, (list, tuple)):
            argv += [options.flag(name), ",".join(map(str, value))]
        else:
            argv += [options.flag(name), str(value)]
    return argv
