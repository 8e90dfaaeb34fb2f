"""``python -m toprt COMMAND ...``: the toprt commands, run in this process by the same
code as the binaries (``toprt-convert``, ``toprt run`` / ``toprt inspect``,
``toprt-calibrate``, ``engine-bench``), with the same options, output and exit status."""

import os
import sys
import threading

from ._errors import CommandError
from ._toprt import _command

COMMANDS = {
    "convert": ("toprt-convert", "Convert a Hugging Face checkpoint folder into a .toprt file"),
    "run": ("toprt run", "Run a model on JSONL or text input; JSONL results on stdout"),
    "inspect": ("toprt inspect", "Print a model file's architecture, head, keep-rules and tensors"),
    "calibrate": ("toprt-calibrate", "Fit keep-rules under a budget and/or int8 choices on your text"),
    "bench": ("engine-bench", "Per-layer latency, dense against pruned, on this CPU"),
}

USAGE = """usage: python -m toprt COMMAND [OPTIONS...]

The toprt commands, run in this Python process (the same code as the binaries).

commands:
{commands}

`python -m toprt COMMAND --help` lists every option of a command.
options:
  -h, --help     print this help
  -V, --version  print the version
"""


def usage():
    width = max(len(c) for c in COMMANDS)
    lines = [f"  {name:<{width}}  {text} (as {binary})" for name, (binary, text) in COMMANDS.items()]
    return USAGE.format(commands="\n".join(lines))


class _Tee:
    """Copies what is written to fd 2 (where the Rust commands print their errors)
    into a buffer while it still reaches the terminal."""

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        r, w = os.pipe()
        os.dup2(w, 2)
        os.close(w)
        self.chunks = []

        def pump():
            while True:
                data = os.read(r, 65536)
                if not data:
                    break
                self.chunks.append(data)
                os.write(self.saved, data)
            os.close(r)

        self.thread = threading.Thread(target=pump, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self.saved, 2)  # closes the pipe's last write end: the pump ends
        self.thread.join()
        os.close(self.saved)
        self.text = b"".join(self.chunks).decode("utf-8", "replace")
        return False


def run_command(name, args, check=False):
    """Runs command ``name`` with ``args`` (a list of str); returns its exit status. With
    ``check``, a non-zero status raises CommandError carrying what it printed on stderr."""
    if name not in COMMANDS:
        raise CommandError(f"unknown command '{name}' (commands: {', '.join(COMMANDS)})")
    argv = [os.fspath(a) for a in args]
    if name == "bench" and not os.environ.get("TOPRT_CACHE_DIR"):
        # engine-bench caches its built-in model next to its binary; here that is Python.
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        os.environ["TOPRT_CACHE_DIR"] = os.path.join(cache, "toprt")
    sys.stdout.flush()
    sys.stderr.flush()
    if not check:
        return _command(name, argv)
    with _Tee() as tee:
        status = _command(name, argv)
    if status != 0:
        lines = [l for l in tee.text.strip().splitlines() if l.strip()]
        raise CommandError(lines[-1] if lines else f"{COMMANDS[name][0]} failed with exit status {status}")
    return status


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(), end="")
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(f"toprt {__version__}")
        return 0
    if argv[0] not in COMMANDS:
        print(f"error: unknown command '{argv[0]}'\n", file=sys.stderr)
        print(usage(), end="", file=sys.stderr)
        return 2
    return run_command(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(main())
